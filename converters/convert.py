"""Keras / SavedModel / frozen graph -> ``.tflite`` at each precision, with a report of what it cost.

Recipes (``--precision``):
  fp32      plain conversion
  fp16      float16 weights (dequantized at load), float compute
  dynamic   int8 weights, float activations (hybrid kernels)
  int8      full integer, calibrated; ``io`` picks float / int8 / uint8 input and output
  int16x8   16-bit activations, 8-bit weights, calibrated

Always a static batch-1 input and TFLite builtin ops only (``allow_flex`` opts in to Flex).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn import __version__, tflite_file
from edgecnn._quiet import quiet_stderr
from edgecnn.models._tf import tensorflow
from edgecnn.calibration.datasets import ImageSet, load_images
from edgecnn.errors import EdgecnnError, InputError
from edgecnn.targets.coverage import coverage
from edgecnn.targets.profile import IO_TYPES, PRECISIONS, load_target

from edgecnn.converters.sources import Source, default_preprocess, load_source, make_converter

NEEDS_CALIBRATION = ("int8", "int16x8")
TOLERANCE = {"classification": 0.98, "embedding": 0.98}  # top-1 agreement / cosine below which int8 "loses"


@dataclass
class ConvertOptions:
    precision: str | None = None
    target: str | None = None
    io: str | None = None
    output: str | None = None
    calibration: str | None = "bundled"
    samples: int = 200
    held_out: int | None = None
    allow_flex: bool = False
    inputs: str | None = None
    outputs: str | None = None
    weights: str | None = None
    normalize: str | None = None
    color: str | None = None
    resize: str | None = None
    labels: list | None = None
    eval_dir: str | None = None
    keep_float: str | None = None
    debug_layers: bool | None = None  # default: on for int8 / int16x8
    measure_latency: bool = True
    progress: bool = False
    builder_options: dict = field(default_factory=dict)


def _check_options(opts: ConvertOptions, target):
    precision = opts.precision or target.precision
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    io = opts.io or (target.io if precision == "int8" else "float")
    if io not in IO_TYPES:
        raise InputError(f"unknown --io {io!r}; choose one of {', '.join(IO_TYPES)}")
    if io != "float" and precision != "int8":
        raise InputError(f"--io {io} needs --precision int8 (integer input/output exists only for full-integer models)")
    if not isinstance(opts.samples, int) or opts.samples < 1:
        raise InputError(f"--samples must be a positive integer, got {opts.samples!r}")
    return precision, io


def default_output(src: Source, source_arg: str, precision: str) -> Path:
    p = Path(source_arg)
    folder = p.parent if (p.exists() and not p.is_dir()) else (p.parent if p.exists() else Path.cwd())
    return folder / f"{src.name}_{precision}.tflite"


def _check_writable(out: Path):
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.exists():
        raise InputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise InputError(f"cannot write to {folder} (permission denied); choose another --output")
    if out.exists() and out.is_dir():
        raise InputError(f"--output {out} is a folder; give a file name ending in .tflite")


def _representative(images: list, spec):
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


_FLEX_RE = re.compile(r"\btf\.([A-Za-z0-9_]+)")


def run_converter(conv) -> bytes:
    try:
        with quiet_stderr():
            return conv.convert()
    except Exception as exc:  # noqa: BLE001 - ConverterError and friends
        text = str(exc)
        ops = sorted(set(_FLEX_RE.findall(text)) - {"function", "Tensor", "lite", "compat"})
        if ops and ("not supported" in text or "Flex" in text or "select" in text.lower()):
            raise InputError(
                f"op(s) {', '.join(ops)} have no TFLite builtin; change the model, or pass --allow-flex "
                "(the model then needs the Flex delegate, which LiteRT's pip interpreter lacks)"
            ) from None
        line = next((ln.strip() for ln in text.splitlines() if ln.strip() and "Traceback" not in ln), type(exc).__name__)
        raise EdgecnnError(f"the TFLite converter failed: {line[:300]}") from None


def atomic_write(path: Path, data: bytes) -> None:
    """Write next to the destination, then rename: never a half-written model."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _bytes_to_model(data: bytes, folder: Path, name: str):
    """Load converted bytes through the device runtime (the real interpreter) via a temp file."""
    from edgecnn.runtime import Model

    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tflite", dir=str(folder))
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        return Model(tmp, target="cpu", warn=lambda _m: None), tmp
    except BaseException:
        os.unlink(tmp)
        raise


def _outputs(model, xs) -> list[np.ndarray]:
    return [model.run(x)[0] for x in xs]


def compare_outputs(task: str, ref: list, got: list) -> dict:
    """Quantized vs float on the same prepared inputs."""
    ref_a, got_a = np.stack(ref).reshape(len(ref), -1), np.stack(got).reshape(len(got), -1)
    err = got_a - ref_a
    out = {
        "samples": len(ref),
        "mean_abs_error": float(np.abs(err).mean()),
        "max_abs_error": float(np.abs(err).max()),
        "relative_rmse": float(np.sqrt((err**2).mean()) / (np.sqrt((ref_a**2).mean()) + 1e-12)),
    }
    if task == "classification":
        out["top1_agreement"] = float((ref_a.argmax(1) == got_a.argmax(1)).mean())
        if ref_a.shape[1] > 1 and float(ref_a.max(1).mean()) < 2.0 / ref_a.shape[1]:
            out["note"] = "the float model's outputs are nearly uniform (untrained weights?): these numbers say little about a trained model"
    if task in ("embedding", "classification", "other", "detection"):
        cos = (ref_a * got_a).sum(1) / (np.linalg.norm(ref_a, axis=1) * np.linalg.norm(got_a, axis=1) + 1e-12)
        out["cosine_mean"] = float(cos.mean())
        out["cosine_min"] = float(cos.min())
    return out


def _lost(task: str, acc: dict) -> bool:
    if task == "classification":
        return acc.get("top1_agreement", 1.0) < TOLERANCE["classification"]
    return acc.get("cosine_mean", 1.0) < TOLERANCE["embedding"]


def layer_errors(conv_factory, rep_images, spec, precision, io, max_samples: int = 16) -> list[dict]:
    """Per-layer quantization error from TensorFlow's QuantizationDebugger, worst first.

    ``rmse_over_scale`` is the root-mean-square error in units of the layer's quantization step:
    about 0.29 (1/sqrt(12)) is pure rounding; well above 1 is a layer worth keeping in float.
    """
    import csv
    import io as _io
    import warnings

    tf = tensorflow()
    conv = apply_recipe(conv_factory(), precision, io, _representative(rep_images, spec))
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=_representative(rep_images[:max_samples], spec))
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
    conv = apply_recipe(conv_factory(), "int8", io, _representative(rep_images, spec))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with quiet_stderr():
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylist)
        debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=_representative(rep_images[:8], spec), debug_options=options)
        return bytes(debugger.get_nondebug_quantized_model())


def convert(source: str, opts: ConvertOptions | None = None, **kw) -> dict:
    """Convert ``source`` by ``opts``; writes the model (atomically) and returns the report."""
    opts = opts or ConvertOptions(**kw)
    t_start = time.perf_counter()
    target = load_target(opts.target)
    precision, io = _check_options(opts, target)
    src = load_source(source, opts.builder_options, opts.weights, opts.inputs, opts.outputs)
    out = Path(opts.output) if opts.output else default_output(src, source, precision)
    if out.suffix != ".tflite":
        raise InputError(f"--output must end in .tflite, got {out}")
    _check_writable(out)
    spec = default_preprocess(src, opts.normalize, opts.color, opts.resize, opts.labels)
    if opts.eval_dir and not Path(opts.eval_dir).is_dir():
        raise InputError(f"--eval {opts.eval_dir} is not a folder of class subfolders")

    # Calibration / held-out data: the same preprocessing the device runtime applies.
    images = ImageSet()
    if opts.calibration:
        images = load_images(opts.calibration, opts.samples + (opts.held_out or min(50, max(4, opts.samples // 5))), progress=opts.progress)
    elif precision in NEEDS_CALIBRATION:
        raise InputError(f"--precision {precision} needs calibration data: --calibration DIR|VIDEO|bundled")
    held = opts.held_out if opts.held_out is not None else min(50, max(2, len(images) // 5)) if len(images) >= 4 else 0
    calib, held_out = images.split(held)
    if precision in NEEDS_CALIBRATION and len(calib) == 0:
        raise InputError("calibration gave no images")

    def factory():
        return make_converter(src)

    rep = _representative(calib.images, spec) if precision in NEEDS_CALIBRATION else None
    t0 = time.perf_counter()
    data = run_converter(apply_recipe(factory(), precision, io, rep, opts.allow_flex))
    seconds = time.perf_counter() - t0
    float_data = data if precision == "fp32" else run_converter(apply_recipe(factory(), "fp32", "float", None, opts.allow_flex))

    meta = {
        "schema": 1,
        "name": src.name,
        "source": str(source),
        "source_kind": src.kind,
        "task": src.task,
        "precision": precision,
        "io": io,
        "target": target.name,
        "preprocess": spec.to_dict(),
        "labels": opts.labels or src.labels,
        **({"anchors": src.anchors} if src.anchors else {}),
        "calibration": {"source": images.source, "samples": len(calib)} if precision in NEEDS_CALIBRATION else None,
        "edgecnn_version": __version__,
        **({"origin": {k: v for k, v in src.extra_metadata.items() if not k.startswith("_")}} if src.extra_metadata else {}),
    }
    final = tflite_file.with_metadata(data, meta)
    info = tflite_file.parse(final, str(out))

    report = {
        "output": str(out),
        "source": str(source),
        "name": src.name,
        "task": src.task,
        "precision": precision,
        "io": io,
        "target": target.name,
        "target_why": target.why,
        "float_size_bytes": len(float_data),
        "seconds": round(seconds, 3),
        **describe_file(info, len(float_data)),
        "calibration": {"source": images.source, "samples": len(calib), "held_out": len(held_out), "skipped": images.skipped},
        "preprocess": spec.to_dict(),
        "runtimes": runtimes_that_load(info, precision),
        "accuracy": None,
        "latency_ms": None,
        "layers": None,
    }

    # Accuracy and latency against the float model, through the real device interpreter.
    flex = sorted({op.name for op in info.operators if op.custom and op.name.startswith("Flex")})
    if flex:
        report["flex_ops"] = flex
        report["runtimes"] = {"ai_edge_litert": False, "tflite_runtime_2.14": False, "tensorflow": "with the Flex delegate only",
                              "note": f"Flex ops {', '.join(flex)} need the TensorFlow Flex delegate; LiteRT's pip interpreter cannot run this model"}
        report["accuracy_note"] = "accuracy and latency not measured: the device interpreter cannot run Flex ops"
    folder = out.parent
    q_model = f_model = None
    tmp_files = []
    xs, float_ref = [], []  # held-out inputs and the float model's outputs, reused by --keep-float
    try:
        if not flex:
            try:
                q_model, tq = _bytes_to_model(final, folder, src.name)
            except InputError as exc:
                hint = " (16x8 on untrained weights can make activation scales vanish: calibrate a trained model)" if precision == "int16x8" else ""
                raise EdgecnnError(f"the converted {precision} model does not run in the device interpreter: {str(exc).split(': ', 1)[-1]}{hint}") from None
            tmp_files.append(tq)
            if precision != "fp32":
                f_model, tf_ = _bytes_to_model(float_data, folder, src.name + "_float")
                tmp_files.append(tf_)
            if len(held_out) and f_model is not None:
                xs = [spec.apply(im) for im in held_out.images]
                float_ref = _outputs(f_model, xs)
                report["accuracy"] = compare_outputs(src.task or "other", float_ref, _outputs(q_model, xs))
            if opts.eval_dir:
                report["eval"] = evaluate_folder(opts.eval_dir, spec, q_model, f_model or q_model, opts.samples * 10)
            if opts.measure_latency:
                report["latency_ms"] = _latency_vs_fp32(q_model, f_model or q_model, xs[0] if xs else spec.apply(_any_image(held_out, calib, src)))
    finally:
        q_model = f_model = None
        for t in tmp_files:
            try:
                os.unlink(t)
            except OSError:
                pass

    want_layers = (opts.debug_layers if opts.debug_layers is not None else precision in NEEDS_CALIBRATION) and not flex
    if want_layers and precision in NEEDS_CALIBRATION and src.kind != "frozen_graph":
        try:
            report["layers"] = layer_errors(factory, calib.images, spec, precision, io)[:25]
        except Exception as exc:  # noqa: BLE001 - the debugger is optional evidence, not the product
            report["layers_error"] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__

    # --keep-float: when int8 loses too much, keep the worst layers in float and report both.
    if opts.keep_float and precision == "int8":
        report["keep_float"] = _keep_float(opts, report, factory, calib, xs, float_ref, spec, io, src, out, meta)
        if report["keep_float"].get("used"):
            final = report["keep_float"].pop("_bytes")
            report.update(describe_file(tflite_file.parse(final), len(float_data)))
    atomic_write(out, final)
    report["total_seconds"] = round(time.perf_counter() - t_start, 2)
    if target.compile == "edgetpu_compiler":
        from edgecnn.targets.edgetpu import compile_for_edgetpu

        report["edgetpu"] = compile_for_edgetpu(out)
    return report


def _any_image(held_out, calib, src):
    if len(held_out):
        return held_out.images[0]
    if len(calib):
        return calib.images[0]
    return np.zeros((src.input_shape[0], src.input_shape[1], 3), np.uint8)


def _latency_vs_fp32(model, fp32_model, x) -> dict:
    """p50 of the converted model beside the fp32 one, same input and threads, in this process."""
    from edgecnn.profiling import summarize, time_invocations

    p50 = {}
    for label, m in (("model", model), ("fp32", fp32_model)):
        _, times = time_invocations(m, x, runs=30, warmup=3)
        p50[label] = summarize(times)["p50"]
    return {"p50": p50["model"], "fp32_p50": p50["fp32"], "speedup_vs_fp32": round(p50["fp32"] / p50["model"], 3), "threads": model.threads}


def _keep_float(opts, report, factory, calib, xs, float_ref, spec, io, src, out, meta) -> dict:
    from edgecnn.targets.coverage import op_mode

    acc = report.get("accuracy") or {}
    auto = opts.keep_float == "auto"
    if auto and acc and not _lost(src.task or "other", acc):
        return {"used": False, "reason": "int8 is within tolerance of float", "tolerance": TOLERANCE}
    layers = report.get("layers") or layer_errors(factory, calib.images, spec, "int8", io)
    known = [r["layer"] for r in layers if r.get("layer")]
    if auto:
        deny = known[:3]
    else:
        deny = resolve_layer_names([s.strip() for s in opts.keep_float.split(",") if s.strip()], known)
    try:
        data = selective_float(factory, calib.images, spec, io, deny)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"--keep-float {','.join(deny)}: {str(exc).splitlines()[0][:200]}") from None
    data = tflite_file.with_metadata(data, {**meta, "kept_float": deny})
    parsed = tflite_file.parse(data)
    float_ops = sum(1 for op in parsed.operators if op.name not in ("QUANTIZE", "DEQUANTIZE") and op_mode(parsed, op) == "float")
    result = {"used": True, "layers": deny, "float_ops": float_ops, "size_bytes": len(data), "accuracy_before": acc}
    if xs:
        q, tq = _bytes_to_model(data, out.parent, src.name + "_sel")
        try:
            result["accuracy_after"] = compare_outputs(src.task or "other", float_ref, _outputs(q, xs))
        finally:
            q = None
            os.unlink(tq)
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
            raise InputError(f"--keep-float: no quantized layer named {w!r}; layers: {', '.join(sorted({k.split('/')[1] if '/' in k else k for k in known})[:30])}")
        out.extend(hits)
    return list(dict.fromkeys(out))


def evaluate_folder(folder, spec, q_model, f_model, limit: int) -> dict:
    """Real top-1 of the float and converted models on a folder of class subfolders."""
    from edgecnn.calibration.datasets import image_folder

    data = image_folder(folder, limit, with_classes=True)
    if not data.images:
        raise InputError(f"--eval {folder}: no images in class subfolders")
    xs = [spec.apply(im) for im in data.images]
    y = np.asarray(data.labels)
    fq = np.stack(_outputs(q_model, xs)).reshape(len(xs), -1).argmax(1)
    ff = np.stack(_outputs(f_model, xs)).reshape(len(xs), -1).argmax(1)
    return {"samples": len(xs), "classes": data.class_names, "top1": float((fq == y).mean()), "float_top1": float((ff == y).mean())}


def describe_file(info, float_size: int) -> dict:
    """The report's facts about the written file (parsed): size, op histogram, float tensors, coverage."""
    return {
        "size_bytes": info.size_bytes,
        "size_ratio": round(info.size_bytes / float_size, 4),
        "ops": info.op_histogram(),
        "float_tensors": len(info.float_tensors()),
        "input": {"shape": info.tensors[info.inputs[0]].shape, "dtype": info.tensors[info.inputs[0]].dtype},
        "output_dtypes": [info.tensors[i].dtype for i in info.outputs],
        "coverage": coverage(info),
    }


def runtimes_that_load(info, precision) -> dict:
    """Which interpreters can load this file (from what was measured; see DESIGN.md)."""
    newest = max((op.version for op in info.operators), default=1)
    return {
        "ai_edge_litert": True,
        "tensorflow": True,
        "tflite_runtime_2.14": precision in ("fp32", "fp16", "int8") and newest <= 6,
        "note": "tflite-runtime 2.14 cannot load TF 2.21 dynamic-range models (newer op versions) and runs int8 without XNNPACK",
    }
