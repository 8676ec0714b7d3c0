"""``edgecnn targets`` and ``edgecnn profile``: the device profiles, and latency the way TFLite's
``benchmark_model`` reports it (device side: no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

from edgecnn.cli._output import check_output_folder, console, human_bytes, no_extra, nonneg_int, positive_float, positive_int, print_json
from edgecnn.core.errors import InputError
from edgecnn.core.files import check_clashes, write_json


def add_parser(sub) -> None:
    sp = sub.add_parser("targets", help="list the device target profiles")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(run=run_targets)

    sp = sub.add_parser(
        "profile",
        help="latency of a .tflite on this machine (no TensorFlow needed)",
        description="Load time, first inference, then p50/p90/p99/min/max/mean/std over the counted runs, a thread sweep, "
        "peak RSS and the machine. Runs with only numpy, OpenCV and the LiteRT runtime installed.",
    )
    sp.add_argument("model", nargs="?", help="the .tflite file")
    sp.add_argument("--target", help="target profile (delegate, threads); default cpu")
    sp.add_argument("--threads", help="thread counts to sweep, e.g. 1,2,4 (default: the target's)")
    sp.add_argument("--runs", type=positive_int, help="counted runs (default 50)")
    sp.add_argument("--seconds", type=positive_float, help="run for this long instead of a run count")
    sp.add_argument("--warmup", type=nonneg_int, default=3, help="warm-up runs before counting (default 3)")
    sp.add_argument("--strict", action="store_true", help="fail (exit 2) when the target's delegate is absent")
    sp.add_argument(
        "--recheck", action="store_true", help="forget this file's cached test-load verdict and test it again (after a runtime upgrade or a false alarm)"
    )
    sp.add_argument("--predict", help="also estimate latency on rpi4 | rpi5 | coral from the model's MACs")
    sp.add_argument("--compare", nargs="+", metavar="RESULT.json", help="line up saved results (from --json/--save) in one table and plot")
    sp.add_argument("--save", help="write this run's JSON result to a file (for --compare later)")
    sp.add_argument("--label", help="name for this run in comparisons")
    sp.add_argument("--plot", help="write a PNG plot of the latencies")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(run=run_profile)


def run_targets(args, extra) -> int:
    no_extra(extra)
    from edgecnn.targets import list_targets
    from edgecnn.targets.predict import summary

    targets = list_targets()
    fits = {name: summary(t) for name, t in targets.items()}
    if args.json:  # each target with its latency-prediction fit: references, constants, leave-one-out error
        print_json([{**t.as_dict(), "predict_fit": fits[name]} for name, t in targets.items()])
        return 0
    from rich.table import Table

    t = Table(title="edgecnn targets (add one: a TOML file in ~/.config/edgecnn/targets/)")
    for c in ("name", "delegate", "precision", "io", "threads", "--predict (refs, LOO error)", "description"):
        t.add_column(c)
    for name, p in targets.items():
        f = fits[name]
        pred = f"{len(f['references'])} refs, ±{f['leave_one_out']['mean_abs_error']:.0%} mean" if f else "-"
        t.add_row(p.name, p.delegate, p.precision, p.io, str(p.threads or "all"), pred, p.description)
    console().print(t)
    return 0


def _bundle_target(model) -> str | None:
    """The target of the bundle a model sits in (its folder has a manifest), so that profiling a
    bundle's model on the device uses that target's threads and delegate; None otherwise."""
    from pathlib import Path

    from edgecnn.device.bundle import MANIFEST, open_bundle

    folder = Path(model).parent
    if not (folder / MANIFEST).is_file():
        return None
    try:
        return open_bundle(folder).target
    except InputError:
        return None


def run_profile(args, extra) -> int:
    no_extra(extra)
    check_output_folder(args.save, "--save")
    check_output_folder(args.plot, "--plot")
    check_clashes({"--save": args.save, "--plot": args.plot}, {"MODEL": args.model, **{f"--compare {f}": f for f in (args.compare or [])}})
    from edgecnn.device import profiling

    if args.runs is not None and args.seconds is not None:
        raise InputError("give --runs or --seconds, not both")
    results = []
    if args.recheck:
        if not args.model:
            raise InputError("--recheck needs a MODEL.tflite")
        from edgecnn.device.loader import forget_verdict

        forget_verdict(args.model)
    if args.model:
        target = args.target or _bundle_target(args.model)
        report = profiling.profile_model(
            args.model,
            target=target,
            threads=args.threads,
            runs=args.runs,
            seconds=args.seconds,
            warmup=args.warmup,
            strict=args.strict,
            progress=not args.json,
        )
        if args.label:
            report["label"] = args.label
        if args.predict:
            report["predict"] = profiling.predict_latency(args.model, args.predict)
        if args.save:
            write_json(args.save, report)
        results.append(report)
    elif args.predict:
        raise InputError("--predict needs a MODEL.tflite")
    for f in args.compare or []:
        results.append(load_result(f))
    if not results:
        raise InputError("give a MODEL.tflite to profile, or --compare A.json B.json")
    if args.plot:
        from edgecnn.workstation.report import plot_profiles

        plot_profiles(results, args.plot)
    if args.json:
        print_json(results[0] if len(results) == 1 else {"compare": results})
        return 0
    print_profiles(results)
    return 0


def load_result(path):
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--compare: result file not found: {p}")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"--compare: {p} is not JSON from edgecnn profile --json") from None
    if not isinstance(data, dict) or "latency_ms" not in data:
        raise InputError(f"--compare: {p} is not a result of edgecnn profile --json (no latency_ms)")
    data.setdefault("label", p.stem)
    return data


def print_profiles(results) -> None:
    from rich.table import Table

    con = console()
    t = Table(title="latency (ms) over counted runs")
    for c in ("model", "machine", "runtime", "delegate", "threads", "load", "first", "p50", "p90", "p99", "mean ± std", "fps"):
        t.add_column(c, justify="right" if c not in ("model", "machine", "runtime", "delegate") else "left")
    for r in results:
        lat = r["latency_ms"]
        m = r.get("machine", {})
        t.add_row(
            r.get("label", r.get("model", "")),
            m.get("board") or m.get("cpu") or "",
            r.get("runtime", ""),
            r.get("delegate", ""),
            str(r.get("threads", "")),
            f"{r.get('load_ms', 0):.1f}",
            f"{r.get('first_inference_ms', 0):.2f}",
            f"{lat['p50']:.3f}",
            f"{lat['p90']:.3f}",
            f"{lat['p99']:.3f}",
            f"{lat['mean']:.3f} ± {lat['std']:.3f}",
            f"{r.get('throughput_fps') or 0:.1f}",
        )
    con.print(t)
    for r in results:
        if r.get("thread_sweep"):
            con.print(
                "thread sweep: "
                + ", ".join(f"{s['threads']}t p50 {s['latency_ms']['p50']:.3f} ms" for s in r["thread_sweep"])
                + (f" (1->2 speed-up {r['scaling_1_to_2']:.2f}x)" if r.get("scaling_1_to_2") else "")
            )
        if r.get("predict"):
            p = r["predict"]
            lo, hi = p["range_ms"]
            con.print(f"predicted on {p['target']}: ~{p['estimate_ms']:.1f} ms (range {lo:.1f}-{hi:.1f} ms; {p['basis']}; {p['uncertainty']})")
            if p.get("warning"):
                con.print(f"[yellow]{p['warning']}[/yellow]")
        if r.get("peak_rss_bytes"):
            con.print(f"{r.get('label')}: peak RSS {human_bytes(r['peak_rss_bytes'])}; per-op times: {r.get('per_op_note', 'n/a')}")
