"""Quantization debugging: per-layer error from TensorFlow's QuantizationDebugger, and int8 models
with chosen layers kept in float (``--keep-float auto|LAYER,…``)."""

from __future__ import annotations

import numpy as np

from edgecnn.converters.evaluation import bytes_to_model, compare_outputs, lost, outputs, proven
from edgecnn.converters.recipes import apply_recipe, representative
from edgecnn.converters.task_metrics import add_task_metrics
from edgecnn.core import tflite_file
from edgecnn.core._quiet import quiet_stderr
from edgecnn.core.errors import InputError, first_line
from edgecnn.core.files import remove_temp
from edgecnn.device.profiling import summarize, time_invocations
from edgecnn.models._tf import tensorflow
from edgecnn.targets.coverage import op_mode


def layer_errors(conv_factory, rep_images, spec, precision, io, max_samples: int = 16) -> list[dict]:
    """Per-layer quantization error from TensorFlow's QuantizationDebugger, worst first.

    ``rmse_over_scale`` is the root-mean-square error in units of the layer's quantization step:
    about 0.29 (1/sqrt(12)) is pure rounding; well above 1 is a layer worth keeping in float.
    ``channel_nsr`` is the quantization noise over the signal, per output channel, averaged over the
    channels: a tensor whose scale one outlier channel sets is pure rounding in its own steps (0.29)
    while it crushes every other channel (NSR near 1). Layers are ranked by it, worst first.
    """
    import csv
    import io as _io
    import warnings

    tf = tensorflow()
    conv = apply_recipe(conv_factory(), precision, io, representative(rep_images, spec))
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={"channel_nsr": channel_nsr})
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=representative(rep_images[:max_samples], spec), debug_options=options
        )
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
                "channel_nsr": _number(r.get("channel_nsr")),
            }
        )
    rows.sort(key=lambda r: (-(r["channel_nsr"] or 0.0), -(r["rmse_over_scale"] or 0.0)))
    return rows


def channel_nsr(float_tensor, quant_tensor, scale, zero_point) -> float:
    """Quantization noise energy over signal energy per channel (the last axis), averaged over the
    channels that carry a signal (the QuantizationDebugger's direct-compare hook)."""
    f = np.asarray(float_tensor, np.float64)
    q = (np.asarray(quant_tensor, np.float64) - zero_point) * scale
    f, q = f.reshape(-1, f.shape[-1]) if f.ndim else f.reshape(1, 1), q.reshape(-1, f.shape[-1]) if f.ndim else q.reshape(1, 1)
    signal = (f**2).sum(0)
    live = signal > 1e-12 * max(1e-30, float(signal.max()))
    if not live.any():
        return float("nan")
    return float(np.clip(((f - q) ** 2).sum(0)[live] / signal[live], 0.0, 10.0).mean())


def _number(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(x) else x


def selective_float(conv_factory, rep_images, spec, io, denylist: list[str]) -> bytes:
    """An int8 model with the named layers (tensor/node names) kept in float."""
    tf = tensorflow()
    conv = apply_recipe(conv_factory(), "int8", io, representative(rep_images, spec))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with quiet_stderr():
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylist)
        debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=representative(rep_images[:8], spec), debug_options=options)
        return bytes(debugger.get_nondebug_quantized_model())


SEARCH_STEPS = (1, 2, 4, 8, 16)  # layers kept in float, tried in turn: a doubling search, each step measured


def keep_float(c) -> dict:
    """``--keep-float`` on a :class:`~edgecnn.converters.convert.Conversion`. Named layers: an int8 model
    with them in float, measured. ``auto``: when int8 is below the tolerance, the layers that quantize
    worst (the debugger's error per quantization step) are kept in float 1, 2, 4, ... at a time, each
    model measured on the held-out inputs, until the task's metric is back within the tolerance; when
    no step gets there, the best one is kept and the report says so. Every step is in ``steps`` (the
    trade-off curve: layers in float, metric, size)."""
    opts, report, io, src, spec = c.opts, c.report, c.io, c.src, c.spec
    task = src.task or "other"
    acc = report.get("accuracy") or {}
    auto = opts.keep_float == "auto"
    if auto and acc and proven(task, acc, opts.tolerance):
        return {"used": False, "reason": "int8 is within the tolerance of float: nothing kept in float"}
    if auto and acc and not lost(task, acc, opts.tolerance):  # float layers cannot raise what is already there
        return {
            "used": False,
            "reason": f"int8 meets the tolerance on these {acc.get('samples')} held-out inputs, but they are too few to be "
            "sure: nothing kept in float; measure on more (--held-out N, --eval DIR)",
        }
    layers = report.get("layers") or layer_errors(c.factory, c.calib.images, spec, "int8", io)
    known = [r["layer"] for r in layers if r.get("layer")]
    if not auto:
        deny = resolve_layer_names([s.strip() for s in opts.keep_float.split(",") if s.strip()], known)
        return _finish(c, _attempt(c, deny), acc)
    if not c.xs:  # nothing to measure on: the three worst, said to be unmeasured
        out = _finish(c, _attempt(c, known[:3]), acc)
        out["note"] = "no held-out inputs to measure on: the 3 worst layers were kept in float without checking the result"
        return out
    groups = consumer_groups(tflite_file.parse(c.data), known)
    steps, best, out_of_reach = [], None, None
    for n in sorted({min(k, len(groups)) for k in SEARCH_STEPS}):
        try:
            step = _attempt(c, list(dict.fromkeys(name for g in groups[:n] for name in g)))
        except InputError as exc:  # the debugger cannot keep this many in float: the search ends at the last step that ran
            if best is None:
                raise
            out_of_reach = str(exc)
            break
        steps.append(step)
        if best is None or _score(task, step["accuracy_after"]) > _score(task, best["accuracy_after"]):
            best = step
        if proven(task, step["accuracy_after"], opts.tolerance):
            best = step
            break
    if acc and _score(task, best["accuracy_after"]) <= _score(task, acc):  # a bigger file that measures no better is no step back
        what = "the percentile ranges' model" if (c.report.get("ranges") or {}).get("used") else "the plain int8 file"
        return {
            "used": False,
            "reason": f"no step with layers in float measured above {what} ({_score(task, acc):.3f}): it was kept",
            "steps": [{"layers": s["layers"], "metric": _score(task, s["accuracy_after"]), "size_vs_int8": s["size_vs_int8"]} for s in steps],
        }
    out = _finish(c, best, acc)
    out["steps"] = [{k: v for k, v in s.items() if k != "_bytes"} for s in steps]
    for s in out["steps"]:
        s["metric"] = _score(task, s.pop("accuracy_after"))
    if not proven(task, best["accuracy_after"], opts.tolerance):
        out["note"] = (
            f"not within the tolerance (with 95% confidence) with up to {len(steps[-1]['layers'])} layer(s) kept in float: these layers keep it "
            f"from int8 ({', '.join(known[:3])}, ...); the best step ({len(best['layers'])} in float) was written"
            + (f"; {n} could not be tried ({out_of_reach.split(': ', 1)[-1][:120]})" if out_of_reach else "")
        )
    return out


def consumer_groups(parsed, ranked: list[str]) -> list[list[str]]:
    """Each ranked layer with the layers that read its output. A tensor crushed by its int8 scale (an
    outlier channel) is harmed where it is quantized for its consumers: keeping only its producer in
    float changes nothing, as the consumer quantizes the float output again with the same scale."""
    names = {t.name: t.index for t in parsed.tensors}
    known = set(ranked)
    out = []
    for layer in ranked:
        idx = names.get(layer)
        readers = [parsed.tensors[o].name for op in parsed.operators if idx is not None and idx in op.inputs for o in op.outputs]
        out.append([layer, *[r for r in readers if r in known and r != layer]])
    return out


def _score(task: str, acc: dict) -> float:
    from edgecnn.converters.verdict import metric_of

    return float(acc.get(metric_of(task, acc), 0.0))


def _attempt(c, deny: list[str]) -> dict:
    """An int8 model with ``deny`` in float: its bytes, size, float ops and (with held-out inputs) accuracy."""
    try:
        data = selective_float(c.factory, c.calib.images, c.spec, c.io, deny)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"--keep-float {','.join(deny)}: {first_line(exc, 200)}") from None
    return measure(c, tflite_file.with_metadata(data, {**c.meta, "kept_float": deny}), {"layers": list(deny)})


def measure(c, data: bytes, step: dict) -> dict:
    """``step`` with the model ``data``'s bytes, size, float ops and (with held-out inputs) its accuracy
    on the task's metric and latency, measured as the plain int8 file was."""
    parsed = tflite_file.parse(data)
    float_ops = sum(1 for op in parsed.operators if op.name not in ("QUANTIZE", "DEQUANTIZE") and op_mode(parsed, op) == "float")
    step = {
        **step,
        "float_ops": float_ops,
        "size_bytes": len(data),
        "size_vs_int8": round(len(data) / max(1, c.report.get("size_bytes") or len(data)), 3),
        "_bytes": data,
    }
    if c.xs:
        temp: list = []
        q = None
        try:
            q, q_path = bytes_to_model(data, c.src.name + "_sel", temp)
            q_out = outputs(q, c.xs)
            step["accuracy_after"] = after = compare_outputs(c.src.task or "other", c.float_ref, q_out)
            decoded = c.src.task in ("detection", "segmentation")  # judged as the plain int8 was: on the task's metric
            f_path = _temp_model(tflite_file.with_metadata(c.float_data, c.meta), c.src.name + "_f", temp) if decoded else None
            add_task_metrics(c, after, f_path, q_path, q_out)
            lat = c.report.get("latency_ms")
            if lat and lat.get("fp32_p50"):  # beside the fp32 file timed earlier in this process, same input and threads
                _, times = time_invocations(q, c.xs[0], runs=30, warmup=3)
                step["latency_p50_ms"] = p50 = summarize(times)["p50"]
                step["speedup_vs_fp32"] = round(lat["fp32_p50"] / p50, 3)
        finally:
            for t in temp:
                remove_temp(t)
            q = None
    return step


def _temp_model(data: bytes, name: str, temp: list):
    from edgecnn.core.files import temp_file

    fd, path = temp_file(prefix=f"edgecnn-{name}.", suffix=".tflite")
    temp.append(path)
    with open(fd, "wb") as f:
        f.write(data)
    return path


def _finish(c, step: dict, acc: dict) -> dict:
    return {"used": True, **step, "accuracy_before": acc}


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
