"""``edgecnn convert``: Keras / SavedModel / frozen graph -> ``.tflite`` at one precision, with a report
of what it cost. The work is a sequence of phases over one :class:`Conversion`:

  plan      options, target, source, output path and preprocessing checked before any work
  data      calibration and held-out images, read through the one preprocessing spec
  convert   the recipe (:mod:`.recipes`) and the fp32 reference, metadata written into the file
  evaluate  accuracy, real top-1 and latency against float in the device interpreter (:mod:`.evaluation`)
  debug     per-layer quantization error and ``--keep-float`` (:mod:`.debugging`)
  write     atomically, then the Edge TPU compile step where the target has one
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import __version__
from edgecnn.calibration.datasets import ImageSet, load_images
from edgecnn.converters import debugging, evaluation, ranges, task_metrics, verdict
from edgecnn.converters.graph_rewrites import fuse_hard_swish
from edgecnn.converters.recipes import NEEDS_CALIBRATION, apply_recipe, representative, run_converter
from edgecnn.converters.report import describe_file, runtimes_that_load
from edgecnn.converters.sources import Source, assumed_preprocessing, default_preprocess, load_source, make_converter
from edgecnn.converters.standard_metadata import for_conversion
from edgecnn.core import tflite_file
from edgecnn.core._progress import stage_printer
from edgecnn.core.errors import EdgecnnError, InputError, first_line, note
from edgecnn.core.files import atomic_write, check_clashes, remove_temp
from edgecnn.core.preprocess import PreprocessSpec
from edgecnn.device.loader import record_verdict, sha256_of
from edgecnn.targets.profile import IO_TYPES, PRECISIONS, TargetProfile, load_target


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
    anchor: str | None = None  # letterbox placement: center | top-left
    pad: int | None = None  # letterbox fill, 0-255
    interpolation: str | None = None  # area | linear
    labels: list | None = None
    eval_dir: str | None = None
    keep_float: str | None = None
    ranges: str = "minmax"  # int8 activation ranges: minmax, auto or pNN.NN (converters/ranges.py)
    tolerance: float | None = None  # the task metric's floor for the verdict (default: converters.verdict)
    debug_layers: bool | None = None  # default: on for int8 / int16x8
    measure_latency: bool = True
    progress: bool = False
    builder_options: dict = field(default_factory=dict)
    input_shape: str | None = None  # ONNX sources: e.g. 1,3,224,224


@dataclass
class Conversion:
    """The state one conversion carries from phase to phase."""

    source_arg: str
    opts: ConvertOptions
    target: TargetProfile
    precision: str
    io: str
    src: Source
    out: Path
    spec: PreprocessSpec
    images: ImageSet = field(default_factory=ImageSet)
    calib: ImageSet = field(default_factory=ImageSet)
    held_out: ImageSet = field(default_factory=ImageSet)
    data: bytes = b""  # the converted model with its metadata
    float_data: bytes = b""  # the fp32 reference
    meta: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    xs: list = field(default_factory=list)  # held-out inputs, prepared
    float_ref: list = field(default_factory=list)  # the float model's outputs on them
    flex: list = field(default_factory=list)
    assumed: str | None = None  # what was assumed of a source that declares no normalisation
    fused: int = 0  # hard-swish chains put back as one op (graph_rewrites)

    def factory(self) -> Any:
        return make_converter(self.src)


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
    if opts.keep_float and precision != "int8":  # a flag that would do nothing is refused, not ignored
        raise InputError(f"--keep-float applies to --precision int8, not {precision}")
    opts.ranges = ranges.parse_ranges(opts.ranges)  # one spelling from here on: minmax, auto or pNN.NN
    if opts.ranges != "minmax" and precision != "int8":
        raise InputError(f"--ranges applies to --precision int8, not {precision}")
    if opts.tolerance is not None and not 0 < opts.tolerance <= 1:
        raise InputError(f"--tolerance is an agreement from 0 to 1 (e.g. 0.98), got {opts.tolerance!r}")
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
        raise InputError(f"cannot write to {folder} (read-only or permission denied); choose another --output")
    if out.exists() and out.is_dir():
        raise InputError(f"--output {out} is a folder; give a file name ending in .tflite")


EVAL_SAMPLES = 200  # held-out inputs a verdict is measured on by default (never used for calibration)


def plan(source: str, opts: ConvertOptions) -> Conversion:
    """Everything that can be checked before converting, checked."""
    target = load_target(opts.target)
    precision, io = _check_options(opts, target)
    if opts.eval_dir and not Path(opts.eval_dir).is_dir():
        raise InputError(f"--eval {opts.eval_dir} is not a folder of class subfolders")
    if opts.output and Path(opts.output).suffix != ".tflite":
        raise InputError(f"--output must end in .tflite, got {opts.output}")
    if opts.output:
        _check_writable(Path(opts.output))
    src = load_source(source, opts.builder_options, opts.weights, opts.inputs, opts.outputs, opts.input_shape)
    out = Path(opts.output) if opts.output else default_output(src, source, precision)
    _check_writable(out)
    existing = lambda v: v if v and Path(v).exists() else None  # noqa: E731
    check_clashes(
        {"--output": out},
        {"SOURCE": existing(source), "--calibration": existing(opts.calibration), "--eval": existing(opts.eval_dir), "--weights": existing(opts.weights)},
    )
    overrides = {"color": opts.color, "resize": opts.resize, "anchor": opts.anchor, "pad": opts.pad, "interpolation": opts.interpolation}
    spec = default_preprocess(src, opts.normalize, overrides, opts.labels)
    c = Conversion(source, opts, target, precision, io, src, out, spec)
    c.assumed = assumed_preprocessing(src, opts.normalize, opts.color)  # said once the model is written
    return c


def read_data(c: Conversion) -> None:
    """Calibration and held-out images, through the same preprocessing the device runtime applies."""
    opts = c.opts
    if opts.calibration:
        c.images = load_images(
            opts.calibration,
            opts.samples + (opts.held_out if opts.held_out is not None else EVAL_SAMPLES),
            progress=opts.progress,
            min_side=2 * max(c.spec.height, c.spec.width),
        )  # memory follows the input size, not the photos
    elif c.precision in NEEDS_CALIBRATION:
        raise InputError(f"--precision {c.precision} needs calibration data: --calibration DIR|VIDEO|bundled")
    n = len(c.images)  # calibration keeps its samples; evaluation gets what is left, at least a fifth
    held = opts.held_out if opts.held_out is not None else min(EVAL_SAMPLES, max(n - opts.samples, n // 5)) if n >= 4 else 0
    held = min(held, n - min(opts.samples, n // 2))  # calibration keeps its samples, or half of a smaller source
    c.calib, c.held_out = c.images.split(held)
    if c.precision in NEEDS_CALIBRATION and len(c.calib) == 0:
        raise InputError("calibration gave no images")


def run_recipe(c: Conversion) -> float:
    """Convert at the chosen precision (and fp32 beside it); returns the converter's seconds."""
    rep = representative(c.calib.images, c.spec) if c.precision in NEEDS_CALIBRATION else None
    t0 = time.perf_counter()
    data, c.fused = fuse_hard_swish(run_converter(apply_recipe(c.factory(), c.precision, c.io, rep, c.opts.allow_flex)))
    seconds = time.perf_counter() - t0
    c.float_data = data if c.precision == "fp32" else fuse_hard_swish(run_converter(apply_recipe(c.factory(), "fp32", "float", None, c.opts.allow_flex)))[0]
    src = c.src
    c.meta = {
        "schema": 1,
        "name": src.name,
        "source": str(c.source_arg),
        "source_kind": src.kind,
        "task": src.task,
        "precision": c.precision,
        "io": c.io,
        "target": c.target.name,
        "preprocess": c.spec.to_dict(),
        "labels": c.opts.labels or src.labels,
        **({"anchors": src.anchors} if src.anchors else {}),
        "calibration": {"source": c.images.source, "samples": len(c.calib)} if c.precision in NEEDS_CALIBRATION else None,
        "edgecnn_version": __version__,
        **({"origin": dict(src.origin)} if src.origin else {}),
    }
    c.data = tflite_file.with_metadata(data, c.meta)
    return seconds


def start_report(c: Conversion, seconds: float) -> None:
    info = tflite_file.parse(c.data, str(c.out))
    c.report = {
        "output": str(c.out),
        "source": str(c.source_arg),
        "name": c.src.name,
        "task": c.src.task,
        "precision": c.precision,
        "io": c.io,
        "target": c.target.name,
        "target_why": c.target.why,
        "float_size_bytes": len(c.float_data),
        "seconds": round(seconds, 3),
        **describe_file(info, len(c.float_data)),
        "calibration": {"source": c.images.source, "samples": len(c.calib), "held_out": len(c.held_out), "skipped": c.images.skipped},
        "preprocess": c.spec.to_dict(),
        **({"preprocess_assumed": c.assumed} if c.assumed else {}),
        "runtimes": runtimes_that_load(info, c.precision),
        "accuracy": None,
        "latency_ms": None,
        "layers": None,
    }
    c.flex = sorted({op.name for op in info.operators if op.custom and op.name.startswith("Flex")})
    if c.flex:
        c.report["flex_ops"] = c.flex
        c.report["runtimes"] = {
            "ai_edge_litert": False,
            "tflite_runtime_2.14": False,
            "tensorflow": "with the Flex delegate only",
            "note": f"Flex ops {', '.join(c.flex)} need the TensorFlow Flex delegate; LiteRT's pip interpreter cannot run this model",
        }
        c.report["accuracy_note"] = "accuracy and latency not measured: the device interpreter cannot run Flex ops"


def evaluate(c: Conversion) -> None:
    """Accuracy and latency against the float model, through the real device interpreter."""
    if c.flex:
        return
    q_model = f_model = None
    tmp_files = []
    try:
        try:
            q_model, q_path = evaluation.bytes_to_model(c.data, c.src.name, tmp_files)
        except InputError as exc:
            hint = " (16x8 on untrained weights can make activation scales vanish: calibrate a trained model)" if c.precision == "int16x8" else ""
            raise EdgecnnError(f"the converted {c.precision} model does not run in the device interpreter: {str(exc).split(': ', 1)[-1]}{hint}") from None
        if c.precision != "fp32":  # with the metadata, so that the camera loop's decoders read it as they read c.data
            f_model, f_path = evaluation.bytes_to_model(tflite_file.with_metadata(c.float_data, c.meta), c.src.name + "_float", tmp_files)
        if len(c.held_out) and f_model is not None:
            c.xs = [c.spec.apply(im) for im in c.held_out.images]
            c.float_ref = evaluation.outputs(f_model, c.xs)
            q_out = evaluation.outputs(q_model, c.xs)
            c.report["accuracy"] = evaluation.compare_outputs(c.src.task or "other", c.float_ref, q_out)
            decoded = task_metrics.decoded_task(f_path) if c.src.task in (None, "other", "detection") else None
            if decoded:  # a model the camera loop decodes is judged on what it finds, whatever its source said
                c.src.task = c.report["task"] = decoded
            task_metrics.add_task_metrics(c, c.report["accuracy"], f_path, q_path, q_out)
        if c.opts.eval_dir:
            c.report["eval"] = evaluation.evaluate_folder(c.opts.eval_dir, c.spec, q_model, f_model or q_model, c.opts.samples * 10)
        if c.src.onnx is not None or _keras_model(c.src) is not None:
            reference(c, f_model or q_model)
        if c.opts.measure_latency:
            x = c.xs[0] if c.xs else c.spec.apply(_any_image(c))
            c.report["latency_ms"] = evaluation.latency_vs_fp32(q_model, f_model or q_model, x)
    finally:
        for t in tmp_files:  # first the files (the interpreters' teardown takes longer)
            remove_temp(t)
        q_model = f_model = None


def reference(c: Conversion, fp32_model) -> None:
    """The fp32 TFLite against its source framework (onnxruntime for ONNX, Keras for Keras models) on
    real held-out images, every output compared. A mismatch is the work failing (exit 1, nothing
    written), never a silently wrong model."""
    from edgecnn.converters import reference as source_check

    images = c.held_out.images or c.calib.images[:8] or [_any_image(c)]
    xs = c.xs or [c.spec.apply(im) for im in images]
    if c.src.onnx is not None:
        ref = source_check.reference_check(c.src.onnx, fp32_model, xs)
    else:
        xs = xs[:KERAS_REFERENCE_SAMPLES]
        model = _keras_model(c.src)
        outs = model.predict(np.stack(xs).astype(np.float32), verbose=0, batch_size=8)
        outs = list(outs.values()) if isinstance(outs, dict) else outs if isinstance(outs, (list, tuple)) else [outs]
        runs = [[np.asarray(o)[k : k + 1] for o in outs] for k in range(len(xs))]
        ref = source_check.compare_with_source("keras", list(getattr(model, "output_names", None) or []), runs, fp32_model, xs)
    c.report["reference"] = ref
    if ref["ok"]:  # the source's output names, by the signature names they were matched to
        signature = [fp32_model.output_names[j] for j in ref["order"]]
        if set(signature) <= set(tflite_file.parse(c.data).signature_outputs):
            c.meta["outputs"] = [{"name": r["name"], "signature": s} for r, s in zip(ref["outputs"], signature)]
            c.data = tflite_file.with_metadata(c.data, c.meta)
    if c.src.onnx is not None and c.src.onnx.notes:
        c.report["onnx_notes"] = list(c.src.onnx.notes)
    if c.fused:
        c.report["graph_rewrites"] = [f"{c.fused} hard-swish chain(s) of 4 element-wise ops fused into TFLite's HARD_SWISH"]
    if not ref["ok"]:
        w = next(r for r in ref["outputs"] if r["name"] == ref["worst_output"])
        raise EdgecnnError(
            f"the fp32 TFLite does not match {ref['against']} on {ref['samples']} real images (output {w['name']!r}: mean abs "
            f"error {w['mean_abs_error']:.3g}, max {w['max_abs_error']:.3g}, against a tolerance of {w['tolerance_mean_abs']:.3g} "
            f"for its scale {w['scale_rms']:.3g}): the converter got it wrong; nothing was written"
        )


KERAS_REFERENCE_SAMPLES = 16  # Keras runs them eagerly: enough to catch a wrong conversion, cheap beside it


def _keras_model(src):
    """The source's Keras model (a builder or a .keras file); None for SavedModels, frozen graphs, ONNX."""
    model = src.keras_model
    if model is None or src.kind != "keras" or not hasattr(model, "predict"):
        return None
    return model


def debug_layers(c: Conversion) -> None:
    """Per-layer quantization error, and ``--keep-float`` when asked."""
    opts = c.opts
    want = (opts.debug_layers if opts.debug_layers is not None else c.precision in NEEDS_CALIBRATION) and not c.flex
    if want and c.precision in NEEDS_CALIBRATION and c.src.kind != "frozen_graph":
        try:
            c.report["layers"] = debugging.layer_errors(c.factory, c.calib.images, c.spec, c.precision, c.io)[:25]
        except Exception as exc:  # noqa: BLE001 - the debugger is optional evidence, not the product
            c.report["layers_error"] = first_line(exc, 200)
    if opts.keep_float and c.precision == "int8":
        c.report["keep_float"] = debugging.keep_float(c)
        if c.report["keep_float"].get("used"):
            c.data = c.report["keep_float"].pop("_bytes")
            c.report.update(describe_file(tflite_file.parse(c.data), len(c.float_data)))


def convert(source: str, opts: ConvertOptions | None = None, **kw) -> dict:
    """Convert ``source`` by ``opts``; writes the model (atomically) and returns the report."""
    opts = opts or ConvertOptions(**kw)
    t_start = time.perf_counter()
    stage = stage_printer("convert", opts.progress)
    c = plan(source, opts)
    stage(f"reading calibration data ({opts.calibration})" if opts.calibration else "no calibration data")
    read_data(c)
    stage(f"converting {c.src.name} to {c.precision} (and fp32 to compare)")
    start_report(c, run_recipe(c))
    stage("measuring against the float model in the device interpreter")
    evaluate(c)
    if c.precision == "int8" and (opts.ranges != "minmax" or opts.keep_float == "auto"):
        stage("activation ranges: percentiles of the calibration values, each measured")
    ranges.tune(c)
    if opts.debug_layers is not False and c.precision in NEEDS_CALIBRATION:
        stage("per-layer quantization error")
    debug_layers(c)
    judge(c)
    c.data = for_conversion(c.data, c.spec, c.meta, c.src.name)
    atomic_write(c.out, c.data)
    stage(f"wrote {c.out}")
    if c.assumed:  # after the work: a failure stays one line
        note(c.assumed)
    if not c.flex:  # it loaded and ran in the device interpreter above: no child-process test load later
        record_verdict(sha256_of(c.data), True, "made and run by edgecnn convert")
    c.report["total_seconds"] = round(time.perf_counter() - t_start, 2)
    if c.target.compile == "edgetpu_compiler":
        from edgecnn.targets.edgetpu import compile_for_edgetpu

        c.report["edgetpu"] = compile_for_edgetpu(c.out)
    return c.report


def judge(c: Conversion) -> None:
    """The report's verdict (and the speed beside it), on what will be written: with --keep-float, the
    model with its float layers."""
    kf = c.report.get("keep_float") or {}
    used = bool(kf.get("used"))
    accuracy = kf.get("accuracy_after") if used else c.report.get("accuracy")
    c.report["verdict"] = verdict.decide(c.src.task, c.precision, accuracy, c.opts.tolerance, kf.get("layers") if used else None, c.report.get("reference"))
    latency = c.report.get("latency_ms")
    if used and latency and kf.get("latency_p50_ms"):  # the speed of the file written, with its float layers
        latency = {**latency, "p50": kf["latency_p50_ms"], "speedup_vs_fp32": kf["speedup_vs_fp32"]}
    c.report["speed"] = verdict.speed(latency, c.target.name) if c.precision != "fp32" else None


def _any_image(c: Conversion):
    if len(c.held_out):
        return c.held_out.images[0]
    if len(c.calib):
        return c.calib.images[0]
    return np.zeros((c.src.input_shape[0], c.src.input_shape[1], 3), np.uint8)
