"""Activation ranges for int8: the cheapest step back to accuracy, before any layer is kept in float.

The TFLite converter sets each activation's int8 range from the smallest and largest value calibration
saw (min-max). One outlier stretches the range and leaves few int8 steps for the values that matter.
``--ranges pNN.NN`` clips each range to that percentile of the calibration values instead; ``auto``
tries several percentiles and keeps the one that measures best on the held-out inputs (no model is
kept that measures below min-max). How: the converter calibrates only (a float model with each
tensor's min and max recorded), the calibrated model runs on the calibration inputs with every tensor
kept, each recorded range is narrowed to the percentile of what it saw, and the quantizer then
quantizes with the narrowed ranges. Each candidate is measured as the plain int8 file was.

The choice is made on the same held-out inputs the verdict is measured on: with a handful of
candidates that favours the chosen one slightly; the report lists every candidate's figure.
"""

from __future__ import annotations

import warnings

import numpy as np

from edgecnn.converters.recipes import apply_recipe, representative
from edgecnn.core import tflite_file
from edgecnn.core._quiet import quiet_stderr
from edgecnn.core.errors import InputError, first_line

PERCENTILES = (99.999, 99.99, 99.9)  # tried in turn by ``auto``: from barely clipped to clipped harder
SAMPLES_PER_TENSOR = 20_000  # values kept per tensor and input: enough for a 99.999th percentile
CALIBRATION_INPUTS = 64  # the statistics come from this many calibration inputs at most


def parse_ranges(text: str | None) -> str:
    """``minmax``, ``auto`` or ``pNN.NN`` (a percentile above 90 and below 100); else one line."""
    t = (text or "minmax").strip().lower()
    if t in ("minmax", "auto"):
        return t
    try:
        pct = float(t[1:]) if t.startswith("p") else None
    except ValueError:
        pct = None
    if pct is None or not 90 < pct < 100:
        raise InputError(f"--ranges {text!r}: expected minmax, auto or a percentile such as p99.99")
    return f"p{pct:g}"


def tune(c) -> None:
    """``--ranges`` on an int8 conversion, and ``--keep-float auto``'s first, cheapest step where min-max
    int8 is not proven within the tolerance: the model and its accuracy replaced where a percentile
    measures better (``ranges`` in the report either way)."""
    from edgecnn.converters.evaluation import proven
    from edgecnn.converters.report import describe_file

    choice = c.opts.ranges
    if c.precision != "int8" or c.flex:
        return
    if choice == "minmax":
        acc = c.report.get("accuracy")
        if c.opts.keep_float != "auto" or not acc or proven(c.src.task or "other", acc, c.opts.tolerance):
            return
        choice = "auto"
    r = c.report["ranges"] = search(c, choice)
    if r.get("used"):
        c.data = r.pop("_bytes")
        c.report["accuracy"] = r.get("accuracy_after") or c.report.get("accuracy")
        c.report.update(describe_file(tflite_file.parse(c.data), len(c.float_data)))


def search(c, choice: str) -> dict:
    """Percentile ranges on an int8 :class:`~edgecnn.converters.convert.Conversion` (``choice``: auto or
    pNN.NN): each candidate measured (``steps``), and the best one's bytes (``_bytes``) where it
    measures above min-max."""
    from edgecnn.converters.debugging import _score, measure

    task = c.src.task or "other"
    if c.io == "uint8":
        return {"used": False, "reason": "percentile ranges are made for float or int8 input and output; --io uint8 keeps min-max"}
    wanted = PERCENTILES if choice == "auto" else (float(choice[1:]),)
    try:
        calibrated = _calibrated(c)
        seen = _activation_samples(calibrated, [c.spec.apply(im) for im in c.calib.images[:CALIBRATION_INPUTS]])
        steps = []
        for pct in wanted:
            data = _quantize(_clipped(calibrated, seen, pct), c.io)
            steps.append(measure(c, tflite_file.with_metadata(data, {**c.meta, "ranges": f"p{pct:g}"}), {"ranges": f"p{pct:g}"}))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the quantizer's own failure, said in one line
        raise InputError(f"--ranges {choice}: {first_line(exc, 200)}") from None
    before = c.report.get("accuracy") or {}
    listed = [{"ranges": "minmax", "metric": _score(task, before), "size_bytes": c.report.get("size_bytes")}] if before else []
    listed += [{k: v for k, v in s.items() if k not in ("_bytes", "accuracy_after")} | {"metric": _score(task, s.get("accuracy_after") or {})} for s in steps]
    out = {"steps": listed}
    if not c.xs:
        best = steps[0]
        return {**out, "used": True, "chosen": best["ranges"], **best, "note": "no held-out inputs to measure on: chosen without checking"}
    best = max(steps, key=lambda s: _score(task, s["accuracy_after"]))
    if before and _score(task, best["accuracy_after"]) <= _score(task, before):
        return {**out, "used": False, "chosen": "minmax", "reason": "no percentile measured above min-max: min-max kept"}
    return {**out, "used": True, "chosen": best["ranges"], **best, "accuracy_before": before}


def _calibrated(c) -> bytes:
    """The float model with each tensor's calibrated min and max recorded (the converter's first half)."""
    conv = apply_recipe(c.factory(), "int8", c.io, representative(c.calib.images, c.spec))
    conv._experimental_calibrate_only = True  # noqa: SLF001 - TFLite's documented two-step quantization (the debugger uses it)
    with quiet_stderr():
        return bytes(conv.convert())


def _ranged_tensors(model) -> dict:
    """{tensor index: tensor} of the float activations the quantizer gives one (per-tensor) range."""
    out = {}
    for k, t in enumerate(model.subgraphs[0].tensors):
        q = t.quantization
        if t.type == 0 and q is not None and q.min is not None and q.max is not None and len(q.min) == 1:
            out[k] = t
    return out


def _activation_samples(calibrated: bytes, xs: list) -> dict:
    """{tensor index: values seen} over ``xs``, each input's values subsampled to :data:`SAMPLES_PER_TENSOR`."""
    from tensorflow.lite.tools import flatbuffer_utils

    from edgecnn.core.backend import get_backend

    wanted = _ranged_tensors(flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated)))
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "for debugging purposes only": every tensor kept is what this is for
        it = get_backend().Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True)
        it.allocate_tensors()
    inp = it.get_input_details()[0]
    rng, seen = np.random.default_rng(0), {k: [] for k in wanted}
    for x in xs:
        it.set_tensor(inp["index"], np.asarray(x, np.float32)[None])
        it.invoke()
        for k in wanted:
            try:
                v = it.get_tensor(k).ravel()
            except ValueError:  # a tensor the interpreter folded away
                continue
            seen[k].append(v if v.size <= SAMPLES_PER_TENSOR else rng.choice(v, SAMPLES_PER_TENSOR, replace=False))
    return {k: np.concatenate(v) for k, v in seen.items() if v}


def _clipped(calibrated: bytes, seen: dict, pct: float) -> bytes:
    """The calibrated model with each recorded range narrowed to the ``pct`` percentile of what it saw
    (never widened; a range that starts at 0, after a ReLU, keeps its 0)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    for k, t in _ranged_tensors(model).items():
        if k not in seen:
            continue
        lo, hi = (float(v) for v in np.percentile(seen[k], [100 - pct, pct]))
        old_lo, old_hi = float(t.quantization.min[0]), float(t.quantization.max[0])
        new_lo = old_lo if old_lo >= 0 else min(0.0, max(old_lo, lo))
        new_hi = old_hi if old_hi <= 0 else max(0.0, min(old_hi, hi))
        if new_hi > new_lo:
            t.quantization.min, t.quantization.max = np.array([new_lo], np.float32), np.array([new_hi], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _quantize(calibrated: bytes, io: str) -> bytes:
    """The quantizer's second half on a calibrated model: float input and output, or int8 ones."""
    from tensorflow.lite.python import convert

    with quiet_stderr():
        return bytes(convert.mlir_quantize(calibrated, disable_per_channel=False, fully_quantize=io != "float"))
