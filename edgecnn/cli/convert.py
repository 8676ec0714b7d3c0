"""``edgecnn convert``: a model to ``.tflite`` at one precision, with its report."""

from __future__ import annotations

from pathlib import Path

from edgecnn.cli._output import (
    check_knobs,
    check_output_folder,
    choice,
    console,
    fraction,
    human_bytes,
    nonneg_int,
    parse_knobs,
    pixel_value,
    positive_int,
    print_json,
)
from edgecnn.core.errors import InputError
from edgecnn.core.files import check_clashes, write_json
from edgecnn.core.preprocess import ANCHORS, COLORS, INTERPOLATIONS, PRESETS, RESIZES
from edgecnn.targets.profile import IO_TYPES, PRECISIONS


def add_parser(sub) -> None:
    sp = sub.add_parser(
        "convert",
        help="quantize and convert a model to .tflite, with a report",
        description="Convert SOURCE (a registry name with builder options, a .keras file, a SavedModel folder or a TF1 "
        "frozen .pb) to TFLite at one precision, calibrated on real data, and report size, op coverage per delegate, "
        "accuracy lost against the float model and latency.",
        epilog="Builder options for a registry name: --input-size N, --classes N, --alpha A, ... (see edgecnn inspect).",
    )
    sp.add_argument("source")
    sp.add_argument("--precision", type=choice(PRECISIONS), help="fp32 | fp16 | dynamic | int8 | int16x8 (default: the target's)")
    sp.add_argument("--target", help="cpu | rpi4 | rpi5 | android-gpu | coral (default cpu; see edgecnn targets)")
    sp.add_argument("--io", type=choice(IO_TYPES), help="input/output type of int8 models: float | int8 | uint8")
    sp.add_argument("--output", help="the .tflite to write (default <name>_<precision>.tflite next to the source)")
    sp.add_argument("--calibration", default="bundled", help="image folder, video file, 'bundled' (real photos), 'bundled:digits', 'bundled:faces' or 'none'")
    sp.add_argument("--samples", type=positive_int, default=200, help="calibration samples (default 200)")
    sp.add_argument(
        "--held-out",
        type=nonneg_int,
        default=None,
        help="samples kept out of calibration to measure accuracy and decide the verdict "
        "(default 200, or what the source has beyond --samples, at least a fifth of it)",
    )
    sp.add_argument("--allow-flex", action="store_true", help="allow TensorFlow (Flex) ops where no builtin exists")
    sp.add_argument("--inputs", help="frozen graph: input tensor name")
    sp.add_argument("--input-shape", help="ONNX: the input's static shape in its own layout, e.g. 1,3,224,224 (dynamic dims need it)")
    sp.add_argument("--outputs", help="frozen graph: output tensor name(s), comma-separated")
    sp.add_argument("--weights", help="weights file for a registry model (.weights.h5)")
    sp.add_argument("--normalize", type=choice(PRESETS), help="unit [0,1] | symmetric [-1,1] | imagenet | raw | whiten (per-image, FaceNet)")
    sp.add_argument("--color", type=choice(COLORS), help="rgb | bgr | gray: channel order the model expects")
    sp.add_argument("--resize", type=choice(RESIZES), help="stretch | letterbox | crop")
    sp.add_argument("--anchor", type=choice(ANCHORS), help="where --resize letterbox puts the image: center (default) | top-left (YOLOX)")
    sp.add_argument("--pad", type=pixel_value, help="the letterbox's fill value, 0-255 (default 0; YOLOX: 114)")
    sp.add_argument(
        "--interpolation", type=choice(INTERPOLATIONS), help="area: anti-aliased (default) | linear: one bilinear step, as a hand-written loop (faster)"
    )
    sp.add_argument("--labels", help="class names: a text file (one per line) or a comma-separated list")
    sp.add_argument("--eval", help="folder of class subfolders: report real top-1 of float and converted model")
    sp.add_argument(
        "--tolerance", type=fraction, help="the verdict's floor on the task's metric vs float (top-1 agreement for classifiers, cosine otherwise; default 0.98)"
    )
    sp.add_argument("--keep-float", help="int8: 'auto' tries percentile ranges, then keeps the worst layers in float, while accuracy is short; or LAYER,LAYER")
    sp.add_argument("--ranges", default="minmax", help="int8 activation ranges: minmax (default), a percentile such as p99.99, or auto (each measured)")
    sp.add_argument("--no-layers", action="store_true", help="skip the per-layer quantization error analysis")
    sp.add_argument("--report", help="write the JSON report to this file")
    sp.add_argument("--html", help="write an HTML report with plots to this file")
    sp.add_argument("--json", action="store_true", help="print the JSON report")

    sp.set_defaults(run=run, accepts_knobs=True)


def _path_or_none(value):
    return value if value and Path(value).exists() else None


def labels_arg(value):
    """``--labels``: a text file (one per line) or a comma-separated list."""
    if value is None:
        return None
    p = Path(value)
    if p.is_file():
        return [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    if "," not in value and (p.suffix or "/" in value):  # a mistyped file name, not a one-class list
        raise InputError(f"--labels {value}: no such file (give a text file, one label per line, or a comma-separated list)")
    return [v.strip() for v in value.split(",") if v.strip()]


def run(args, extra) -> int:
    knobs = check_knobs(parse_knobs(extra))
    if not Path(args.source).exists() and Path(args.source).suffix not in (".keras", ".h5", ".pb", ".onnx") and "/" not in args.source:
        from edgecnn.models.known import check_options

        check_options(args.source, knobs)  # a registry name and its options: checked before TensorFlow loads
    from edgecnn.converters.convert import ConvertOptions, convert

    check_output_folder(args.report, "report")
    check_output_folder(args.html, "html")
    check_clashes(
        {"--output": args.output, "--report": args.report, "--html": args.html},
        {
            "SOURCE": args.source if Path(args.source).exists() else None,
            "--calibration": _path_or_none(args.calibration),
            "--eval": args.eval,
            "--labels": args.labels if args.labels and Path(args.labels).is_file() else None,
            "--weights": args.weights,
        },
    )
    opts = ConvertOptions(
        precision=args.precision,
        target=args.target,
        io=args.io,
        output=args.output,
        calibration=None if args.calibration == "none" else args.calibration,
        samples=args.samples,
        held_out=args.held_out,
        allow_flex=args.allow_flex,
        inputs=args.inputs,
        input_shape=args.input_shape,
        outputs=args.outputs,
        weights=args.weights,
        normalize=args.normalize,
        color=args.color,
        resize=args.resize,
        anchor=args.anchor,
        pad=args.pad,
        interpolation=args.interpolation,
        labels=labels_arg(args.labels),
        eval_dir=args.eval,
        keep_float=args.keep_float,
        ranges=args.ranges,
        tolerance=args.tolerance,
        debug_layers=False if args.no_layers else None,
        progress=not args.json,
        builder_options=knobs,
    )
    report = convert(args.source, opts)  # stage lines on stderr unless --json
    if args.report:
        write_json(args.report, report)
    if args.html:
        from edgecnn.workstation.report import write_convert_html

        write_convert_html(report, args.html)
    if args.json:
        print_json(report)
    else:
        print_convert_summary(report)
    return 0


def print_convert_summary(r: dict) -> None:
    from rich.table import Table

    from edgecnn.converters.verdict import headline

    con = console()
    con.print(headline(r), markup=False, highlight=False)
    con.print(f"[bold]{r['output']}[/bold]  {r['precision']} for {r['target']}  ({r['seconds']:.1f} s conversion, {r.get('total_seconds', 0):.1f} s in all)")
    con.print(
        f"size {human_bytes(r['size_bytes'])} = {r['size_ratio']:.2f}x the fp32 {human_bytes(r['float_size_bytes'])} · "
        f"{sum(r['ops'].values())} ops · input {r['input']['dtype']} {tuple(r['input']['shape'])} · float activations {r['float_tensors']}"
    )
    t = Table(title="op coverage per delegate")
    for c in ("delegate", "ops taken", "partitions", "stays on CPU"):
        t.add_column(c)
    for name, cov in r["coverage"].items():
        rest = ", ".join(f"{u['op']}({u['mode']})x{u['count']}" for u in cov["unsupported"][:4]) or "-"
        t.add_row(name, f"{cov['ops_delegated']}/{cov['ops_total']}", str(cov["partitions"]), rest)
    con.print(t)
    acc = r.get("accuracy")
    if acc:
        parts = [f"{k} {v:.4f}" for k, v in acc.items() if k in ("top1_agreement", "cosine_mean", "cosine_min", "relative_rmse")]
        plain = "plain int8 " if (r.get("keep_float") or {}).get("used") else ""
        con.print(f"{plain}vs float on {acc['samples']} held-out samples: " + ", ".join(parts))
    if r.get("eval"):
        e = r["eval"]
        con.print(f"top-1 on {e['samples']} labelled images: {e['top1']:.4f} (float {e['float_top1']:.4f})")
    lat = r.get("latency_ms")
    if lat:
        plain = "plain int8 " if (r.get("keep_float") or {}).get("used") else ""
        con.print(f"{plain}latency p50 {lat['p50']:.3f} ms vs fp32 {lat['fp32_p50']:.3f} ms ({lat['speedup_vs_fp32']:.2f}x) on {lat['threads']} threads here")
    if r.get("layers"):
        worst = r["layers"][:3]
        con.print("worst quantized layers (noise/signal per channel): " + ", ".join(f"{w['layer']} {w.get('channel_nsr') or 0:.2f}" for w in worst))
    g = r.get("ranges") or {}
    if g.get("steps"):
        con.print("activation ranges (metric): " + ", ".join(f"{s['ranges']}: {s['metric']:.3f}" for s in g["steps"]) + f"; written: {g.get('chosen')}")
    if g.get("note") or g.get("reason"):
        con.print(f"ranges: {g.get('note') or g.get('reason')}", markup=False, highlight=False)
    k = r.get("keep_float") or {}
    if k.get("used"):
        after = k.get("accuracy_after") or {}
        got = ", ".join(f"{m} {after[m]:.4f}" for m in ("top1_agreement", "cosine_mean") if m in after)
        con.print(f"kept in float: {', '.join(k['layers'])} ({k['float_ops']} float ops){': ' + got if got else ''}")
    if k.get("steps"):
        con.print(
            "keep-float search (layers in float: metric, size vs int8): "
            + ", ".join(f"{len(s['layers'])}: {s['metric']:.3f}, {s['size_vs_int8']:.2f}x" for s in k["steps"])
        )
    if k.get("note") or k.get("reason"):
        con.print(f"keep-float: {k.get('note') or k.get('reason')}", markup=False, highlight=False)
    if r.get("edgetpu"):
        e = r["edgetpu"]
        con.print(f"Edge TPU: {'compiled to ' + e['output'] if e.get('compiled') else e.get('message', '')}")
