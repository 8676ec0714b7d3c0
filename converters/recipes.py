"""The conversion recipes: one TFLiteConverter setting per precision, and running the converter.

  fp32      plain conversion
  fp16      float16 weights (dequantized at load), float compute
  dynamic   int8 weights, float activations (hybrid kernels)
  int8      full integer, calibrated; ``io`` picks float / int8 / uint8 input and output
  int16x8   16-bit activations, 8-bit weights, calibrated

Always builtin ops (``allow_flex`` opts in to Flex).
"""

from __future__ import annotations

import re

import numpy as np

from edgecnn.core._quiet import quiet_stderr
from edgecnn.core.errors import EdgecnnError, InputError, first_line
from edgecnn.models._tf import tensorflow

NEEDS_CALIBRATION = ("int8", "int16x8")


def representative(images: list, spec):
    def gen():
        for img in images:
            yield [spec.apply(img)[None].astype(np.float32)]

    return gen


def apply_recipe(conv, precision: str, io: str, rep_data=None, allow_flex: bool = False):
    tf = tensorflow()
    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    conv.experimental_new_converter = True
    if precision == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep_data
        builtins = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io != "float":
            conv.inference_input_type = tf.int8 if io == "int8" else tf.uint8
            conv.inference_output_type = conv.inference_input_type
    elif precision == "int16x8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep_data
        builtins = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if allow_flex:
        builtins = builtins + [tf.lite.OpsSet.SELECT_TF_OPS]
    conv.target_spec.supported_ops = builtins
    return conv


FLEX_RE = re.compile(r"\btf\.([A-Za-z0-9_]+)")


def run_converter(conv) -> bytes:
    try:
        with quiet_stderr():
            return conv.convert()
    except Exception as exc:  # noqa: BLE001 - ConverterError and friends
        text = str(exc)
        ops = sorted(set(FLEX_RE.findall(text)) - {"function", "Tensor", "lite", "compat"})
        if ops and ("not supported" in text or "Flex" in text or "select" in text.lower()):
            raise InputError(
                f"op(s) {', '.join(ops)} have no TFLite builtin; change the model, or pass --allow-flex "
                "(the model then needs the Flex delegate, which LiteRT's pip interpreter lacks)"
            ) from None
        raise EdgecnnError(f"the TFLite converter failed: {first_line(exc)}") from None
