"""Quantization debugging: per-layer error from TensorFlow's QuantizationDebugger, and int8 models
with chosen layers kept in float (``--keep-float auto|LAYER,…``)."""

from __future__ import annotations

import numpy as np

from edgecnn import tflite_file
from edgecnn._quiet import quiet_stderr
from edgecnn.converters.evaluation import bytes_to_model, compare_outputs, lost, outputs
from edgecnn.converters.recipes import apply_recipe, representative
from edgecnn.errors import InputError, first_line
from edgecnn.files import remove_temp
from edgecnn.models._tf import tensorflow
from edgecnn.targets.coverage import op_mode


def layer_errors(conv_factory, rep_images, spec, precision, io, max_samples: int = 16) -> list[dict]:
    """Per-layer quantization error from TensorFlow's QuantizationDebugger, worst first.

    ``rmse_over_scale`` is the root-mean-square error in units of the layer's quantization step:
    about 0.29 (1/sqrt(12)) is pure rounding; well above 1 is a layer worth keeping in float.
    """
    import csv
    import io as _io
    import warnings

    tf = tensorflow()
    conv = apply_recipe(conv_factory(), precision, io, representative(rep_images, spec))
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=representative(rep_images[:max_samples], spec))
        debugger.run()
        buf = _io.StringIO()
        debugger.layer_statistics_dump(buf)
    rows = []
    for r in csv.DictReader(_io.StringIO(buf.getvalue())):
        scale = float(r.get("scale") or 0.0)
        mse = float(r.get("mean_squared_error") or 0.0)
        rmse = float(np.sqrt(mse))
        rows.append(
            {
                "layer": r.get("tensor_name"),
                "op": r.get("op_name"),
                "scale": scale,
                "rmse": rmse,
                "max_abs_error": float(r.get("max_abs_error") or 0.0),
                "mean_error": float(r.get("mean_error") or 0.0),
                "rmse_over_scale": rmse / scale if scale > 0 else None,
            }
        )
    rows.sort(key=lambda r: -(r["rmse_over_scale"] or 0.0))
    return rows


def selective_float(conv_factory, rep_images, spec, io, denylist: list[str]) -> bytes:
    """An int8 model with the named layers (tensor/node names) kept in float."""
    tf = tensorflow()
    conv = apply_recipe(conv_factory(), "int8", io, representative(rep_images, spec))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with quiet_stderr():
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylist)
        debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=representative(rep_images[:8], spec), debug_options=options)
        return bytes(debugger.get_nondebug_quantized_model())


def keep_float(c) -> dict:
    """``--keep-float`` on a :class:`~edgecnn.converters.convert.Conversion`: when int8 loses too much
    (or for the named layers), an int8 model with the worst layers in float, measured again."""
    opts, report, io, src, spec = c.opts, c.report, c.io, c.src, c.spec
    acc = report.get("accuracy") or {}
    auto = opts.keep_float == "auto"
    if auto and acc and not lost(src.task or "other", acc, opts.tolerance):
        return {"used": False, "reason": "int8 is within the tolerance of float: nothing kept in float"}
    layers = report.get("layers") or layer_errors(c.factory, c.calib.images, spec, "int8", io)
    known = [r["layer"] for r in layers if r.get("layer")]
    if auto:
        deny = known[:3]
    else:
        deny = resolve_layer_names([s.strip() for s in opts.keep_float.split(",") if s.strip()], known)
    try:
        data = selective_float(c.factory, c.calib.images, spec, io, deny)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"--keep-float {','.join(deny)}: {first_line(exc, 200)}") from None
    data = tflite_file.with_metadata(data, {**c.meta, "kept_float": deny})
    parsed = tflite_file.parse(data)
    float_ops = sum(1 for op in parsed.operators if op.name not in ("QUANTIZE", "DEQUANTIZE") and op_mode(parsed, op) == "float")
    result = {"used": True, "layers": deny, "float_ops": float_ops, "size_bytes": len(data), "accuracy_before": acc}
    if c.xs:
        temp: list = []
        try:
            q, _ = bytes_to_model(data, src.name + "_sel", temp)
            result["accuracy_after"] = after = compare_outputs(src.task or "other", c.float_ref, outputs(q, c.xs))
            if auto and lost(src.task or "other", after, opts.tolerance):
                result["note"] = f"still below the tolerance with {len(deny)} layer(s) kept in float"
        finally:
            for t in temp:
                remove_temp(t)
            q = None
    result["_bytes"] = data
    return result


def resolve_layer_names(wanted: list[str], known: list[str]) -> list[str]:
    """Map Keras layer names (``c1``) or full tensor names onto the debugger's tensor names."""
    out = []
    for w in wanted:
        if w in known:
            out.append(w)
            continue
        hits = [k for k in known if any(seg == w or seg.rsplit("_", 1)[0] == w for seg in k.split("/"))]
        if not hits:
            names = sorted({k.split("/")[1] if "/" in k else k for k in known})[:30]
            raise InputError(f"--keep-float: no quantized layer named {w!r}; layers: {', '.join(names)}")
        out.extend(hits)
    return list(dict.fromkeys(out))
