"""The ``edgecnn`` command line: thin argument parsing over library functions that tests call too.

Exit codes: 0 ok, 1 the work failed, 2 bad usage or bad input. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from typing import Any, Callable

from edgecnn import __version__
from edgecnn.errors import EdgecnnError, InputError

_COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {}


def command(name: str):
    def deco(fn):
        _COMMANDS[name] = fn
        return fn

    return deco


def parse_value(text: str) -> Any:
    """A command-line value as Python: numbers, tuples, lists, dicts, booleans, else the string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_knobs(tokens: list[str]) -> dict[str, Any]:
    """``--alpha 0.5 --input-size=96`` -> ``{"alpha": 0.5, "input_size": 96}``."""
    knobs: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) <= 2:
            raise InputError(f"unexpected argument {tok!r}; builder options look like --alpha 0.5")
        key, eq, value = tok[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                raise InputError(f"option --{key} needs a value")
            value = tokens[i + 1]
            i += 1
        knobs[key.replace("-", "_")] = parse_value(value)
        i += 1
    return knobs


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160  # no terminal: don't squeeze tables to 80
    return Console(stderr=stderr, highlight=False, width=width)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def human(n: float, unit: str = "") -> str:
    for suffix in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{suffix}{unit}" if suffix else f"{n:g}{unit}"
        n /= 1000
    return f"{n:.3g}P{unit}"


def human_bytes(n: float) -> str:
    for suffix in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or suffix == "GiB":
            return f"{n:.1f} {suffix}" if suffix != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


# ---------------------------------------------------------------- models / inspect


@command("models")
def cmd_models(args, extra) -> int:
    from edgecnn.models.catalog import model_catalog

    if extra:
        raise InputError(f"unexpected arguments: {' '.join(extra)}")
    rows = model_catalog(progress=not args.json)
    if args.json:
        print_json(rows)
        return 0
    from rich.table import Table

    table = Table(title="edgecnn models (default configuration, batch 1)")
    for col, just in [("name", "left"), ("family", "left"), ("input", "left"), ("params", "right"), ("MACs", "right"), ("peak activations", "right")]:
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row(
            r["name"],
            r["family"],
            "x".join(map(str, r["input_shape"])),
            f"{r['params']:,}",
            human(r["macs"]),
            human_bytes(r["peak_activation_bytes"]),
        )
    _console().print(table)
    return 0


@command("inspect")
def cmd_inspect(args, extra) -> int:
    from edgecnn import models

    knobs = parse_knobs(extra)
    resolved = models.resolve_kwargs(args.name, knobs)  # exit 2 with valid options before building
    model = models.build(args.name, **resolved)
    rows = models.layer_table(model)
    st = models.stats(model)
    spec = models.get_spec(args.name)
    report = {"name": args.name, "family": spec.family, "paper": spec.paper, "options": resolved, **st, "layers": rows}
    if args.json:
        print_json(report)
        return 0
    from rich.table import Table

    table = Table(title=f"{args.name} — {spec.paper}")
    for col, just in [("layer", "left"), ("type", "left"), ("output shape", "left"), ("params", "right"), ("MACs", "right")]:
        table.add_column(col, justify=just)
    for r in rows:
        shape = r["output_shape"]
        table.add_row(r["name"], r["type"], str(tuple(shape)) if shape and isinstance(shape[0], int) else str(shape), f"{r['params']:,}", f"{r['macs']:,}")
    table.add_section()
    table.add_row("total", "", str(tuple(st["output_shape"])), f"{st['params']:,}", f"{st['macs']:,}")
    con = _console()
    con.print(table)
    con.print(
        f"params {st['params']:,} (trainable {st['trainable_params']:,}) · MACs {human(st['macs'])} · "
        f"peak activations {human_bytes(st['peak_activation_bytes'])} · input {tuple(st['input_shape'])}"
    )
    return 0


# ---------------------------------------------------------------- convert


def write_json_atomic(path, obj) -> None:
    import tempfile
    from pathlib import Path

    p = Path(path)
    if not p.parent.exists() and str(p.parent):
        raise InputError(f"report folder does not exist: {p.parent}")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=str(p.parent) if str(p.parent) else ".")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
    os.replace(tmp, p)


def _labels_arg(value):
    from pathlib import Path

    if value is None:
        return None
    p = Path(value)
    if p.is_file():
        return [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    return [v.strip() for v in value.split(",") if v.strip()]


@command("convert")
def cmd_convert(args, extra) -> int:
    from edgecnn.converters.convert import ConvertOptions, convert

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
        outputs=args.outputs,
        weights=args.weights,
        normalize=args.normalize,
        color=args.color,
        resize=args.resize,
        labels=_labels_arg(args.labels),
        eval_dir=args.eval,
        keep_float=args.keep_float,
        debug_layers=False if args.no_layers else None,
        progress=not args.json,
        builder_options=parse_knobs(extra),
    )
    if args.report:
        from pathlib import Path

        if not Path(args.report).parent.exists():
            raise InputError(f"report folder does not exist: {Path(args.report).parent}")
    status = _console(stderr=True).status("converting…") if not args.json else None
    if status:
        status.start()
    try:
        report = convert(args.source, opts)
    finally:
        if status:
            status.stop()
    if args.report:
        write_json_atomic(args.report, report)
    if args.html:
        from edgecnn.report import write_convert_html

        write_convert_html(report, args.html)
    if args.json:
        print_json(report)
    else:
        print_convert_summary(report)
    return 0


def print_convert_summary(r: dict) -> None:
    from rich.table import Table

    con = _console()
    con.print(f"[bold]{r['output']}[/bold]  {r['precision']} for {r['target']}  ({r['seconds']:.1f} s conversion, {r.get('total_seconds', 0):.1f} s in all)")
    con.print(f"size {human_bytes(r['size_bytes'])} = {r['size_ratio']:.2f}x the fp32 {human_bytes(r['float_size_bytes'])} · "
              f"{sum(r['ops'].values())} ops · input {r['input']['dtype']} {tuple(r['input']['shape'])} · float activations {r['float_tensors']}")
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
        con.print(f"vs float on {acc['samples']} held-out samples: " + ", ".join(parts))
    if r.get("eval"):
        e = r["eval"]
        con.print(f"top-1 on {e['samples']} labelled images: {e['top1']:.4f} (float {e['float_top1']:.4f})")
    lat = r.get("latency_ms")
    if lat:
        con.print(f"latency p50 {lat['p50']:.3f} ms vs fp32 {lat['fp32_p50']:.3f} ms ({lat['speedup_vs_fp32']:.2f}x) on {lat['threads']} threads here")
    if r.get("layers"):
        worst = r["layers"][:3]
        con.print("worst quantized layers (rmse/scale): " + ", ".join(f"{w['layer']} {w['rmse_over_scale'] or 0:.2f}" for w in worst))
    if r.get("keep_float", {}).get("used"):
        k = r["keep_float"]
        con.print(f"kept in float: {', '.join(k['layers'])} ({k['float_ops']} float ops)")
    if r.get("edgetpu"):
        e = r["edgetpu"]
        con.print(f"Edge TPU: {'compiled to ' + e['output'] if e.get('compiled') else e.get('message', '')}")


# ---------------------------------------------------------------- targets / profile


@command("targets")
def cmd_targets(args, extra) -> int:
    from edgecnn.targets import list_targets

    targets = list_targets()
    if args.json:
        print_json([t.as_dict() for t in targets.values()])
        return 0
    from rich.table import Table

    t = Table(title="edgecnn targets (add one: a TOML file in ~/.config/edgecnn/targets/)")
    for c in ("name", "delegate", "precision", "io", "threads", "description"):
        t.add_column(c)
    for p in targets.values():
        t.add_row(p.name, p.delegate, p.precision, p.io, str(p.threads or "all"), p.description)
    _console().print(t)
    return 0


@command("profile")
def cmd_profile(args, extra) -> int:
    from edgecnn import profiling

    if args.runs is not None and args.seconds is not None:
        raise InputError("give --runs or --seconds, not both")
    results = []
    if args.model:
        report = profiling.profile_model(
            args.model, target=args.target, threads=args.threads, runs=args.runs, seconds=args.seconds,
            warmup=args.warmup, strict=args.strict, progress=not args.json,
        )
        if args.label:
            report["label"] = args.label
        if args.predict:
            report["predict"] = profiling.predict_latency(args.model, args.predict)
        if args.save:
            write_json_atomic(args.save, report)
        results.append(report)
    elif args.predict:
        raise InputError("--predict needs a MODEL.tflite")
    for f in args.compare or []:
        results.append(_load_result(f))
    if not results:
        raise InputError("give a MODEL.tflite to profile, or --compare A.json B.json")
    if args.plot:
        from edgecnn.report import plot_profiles

        plot_profiles(results, args.plot)
    if args.json:
        print_json(results[0] if len(results) == 1 else {"compare": results})
        return 0
    _print_profiles(results)
    return 0


def _load_result(path):
    from pathlib import Path

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


def _print_profiles(results) -> None:
    from rich.table import Table

    con = _console()
    t = Table(title="latency (ms) over counted runs")
    for c in ("model", "machine", "runtime", "delegate", "threads", "load", "first", "p50", "p90", "p99", "mean ± std", "fps"):
        t.add_column(c, justify="right" if c not in ("model", "machine", "runtime", "delegate") else "left")
    for r in results:
        lat = r["latency_ms"]
        m = r.get("machine", {})
        t.add_row(
            r.get("label", r.get("model", "")), m.get("board") or m.get("cpu") or "", r.get("runtime", ""), r.get("delegate", ""),
            str(r.get("threads", "")), f"{r.get('load_ms', 0):.1f}", f"{r.get('first_inference_ms', 0):.2f}",
            f"{lat['p50']:.3f}", f"{lat['p90']:.3f}", f"{lat['p99']:.3f}", f"{lat['mean']:.3f} ± {lat['std']:.3f}", f"{r.get('throughput_fps') or 0:.1f}",
        )
    con.print(t)
    for r in results:
        if r.get("thread_sweep"):
            con.print("thread sweep: " + ", ".join(f"{s['threads']}t p50 {s['latency_ms']['p50']:.3f} ms" for s in r["thread_sweep"])
                      + (f" (1->2 speed-up {r['scaling_1_to_2']:.2f}x)" if r.get("scaling_1_to_2") else ""))
        if r.get("predict"):
            p = r["predict"]
            con.print(f"predicted on {p['target']}: ~{p['estimate_ms']:.1f} ms (range {p['range_ms'][0]:.1f}-{p['range_ms'][1]:.1f} ms; {p['basis']}; {p['uncertainty']})")
            if p.get("warning"):
                con.print(f"[yellow]{p['warning']}[/yellow]")
        if r.get("peak_rss_bytes"):
            con.print(f"{r.get('label')}: peak RSS {human_bytes(r['peak_rss_bytes'])}; per-op times: {r.get('per_op_note', 'n/a')}")


# ---------------------------------------------------------------- camera


@command("camera")
def cmd_camera(args, extra) -> int:
    from edgecnn import camera

    verify = None
    detector, bundle = args.detector, args.bundle
    if bundle:
        from edgecnn.bundle import read_manifest

        manifest = read_manifest(bundle)
        if detector == "blazeface" and manifest.get("detector"):
            detector = str(manifest.path(manifest["detector"]))
    if args.verify:
        from edgecnn.gallery import LiveVerifier

        verify = LiveVerifier.open(gallery=args.gallery, embedder=args.embedder, bundle=bundle, target=args.target)
    if args.source is not None and str(args.source).isdigit() is False and not os.path.exists(str(args.source)) and "://" not in str(args.source):
        raise InputError(f"video source not found: {args.source}")
    summary = camera.run(
        source=args.source, detector=detector, target=args.target, threads=args.threads, output=args.output,
        headless=args.headless, max_frames=args.max_frames, realtime=args.realtime, verify=verify, bundle=bundle,
        min_score=args.min_score, strict=args.strict, progress=not args.json, keep_per_frame=args.keep_per_frame,
    )
    if args.json:
        print_json(summary)
    else:
        con = _console()
        lat = summary["latency_ms"]
        con.print(
            f"{summary['frames']} frames from {summary['source']} ({summary['ended_by']}) · {summary['fps']:.1f} FPS · "
            f"model p50 {lat['p50'] or 0:.1f} ms, p90 {lat['p90'] or 0:.1f} ms · dropped {summary['dropped']} · "
            f"{summary['frames_with_detections']} frames with detections, {summary['detections']} detections"
            + (f" · wrote {summary['frames_written']} frames to {summary['output']}" if summary["output"] else "")
        )
        if summary.get("identities"):
            con.print("identities: " + ", ".join(f"{k} x{v}" for k, v in summary["identities"].items()))
    return 0


# ---------------------------------------------------------------- faces


def _verifier(args):
    from edgecnn.face_models import resolve_embedder
    from edgecnn.faces import FaceVerifier

    emb = resolve_embedder(getattr(args, "embedder", None), bundle=getattr(args, "bundle", None), target=getattr(args, "target", None))
    return FaceVerifier(emb, strict=getattr(args, "strict", False))


def _gallery_path(args):
    from pathlib import Path

    if getattr(args, "gallery", None):
        return args.gallery
    if getattr(args, "bundle", None) and (Path(args.bundle) / "gallery.db").exists():
        return str(Path(args.bundle) / "gallery.db")
    return None


@command("enroll")
def cmd_enroll(args, extra) -> int:
    import cv2

    from edgecnn.faces import read_image
    from edgecnn.gallery import Gallery

    images = [read_image(p) for p in args.images]  # every file checked before anything is written
    v = _verifier(args)
    vectors, crops = [], []
    for path, img in zip(args.images, images):
        emb = v.embed(img, str(path))
        vectors.append(emb.vector)
        if args.keep_images:
            from edgecnn.faces import align_face
            from edgecnn.detection import Detection

            crop = align_face(img, Detection(emb.box, emb.score), 160)
            crops.append(cv2.imencode(".jpg", crop)[1].tobytes())
    g = Gallery(_gallery_path(args))
    pause = float(os.environ.get("EDGECNN_ENROLL_PAUSE", "0") or 0)  # lets tests kill a real enrolment half-way
    n = g.enroll(args.name, vectors, v.embedder.identity, sources=[str(p) for p in args.images],
                 images=crops if args.keep_images else None, replace=args.replace, _pause=pause)
    result = {"name": args.name, "enrolled": n, "gallery": str(g.path), "embedder": v.embedder.identity}
    print_json(result) if args.json else _console().print(f"enrolled {args.name}: {n} face(s) into {g.path}")
    return 0


@command("gallery")
def cmd_gallery(args, extra) -> int:
    from edgecnn.gallery import Gallery

    g = Gallery(_gallery_path(args), create=False)
    if args.action == "list":
        rows = g.list()
        if args.json:
            print_json({"gallery": str(g.path), "embedder": g.meta("embedder"), "threshold": g.meta("threshold"), "identities": rows})
        else:
            con = _console()
            con.print(f"{g.path} · embedder {g.meta('embedder')} · {len(rows)} identities")
            for r in rows:
                con.print(f"  {r['name']}: {r['embeddings']} embedding(s), enrolled {r['enrolled']}")
        return 0
    if args.action == "remove":
        if not args.name:
            raise InputError("gallery remove needs a NAME")
        g.remove(args.name)
        print_json({"removed": args.name}) if args.json else _console().print(f"removed {args.name}")
        return 0
    if args.action == "export":
        data = g.export()
        if args.name:
            write_json_atomic(args.name, data)
        else:
            print_json(data)
        return 0
    raise InputError(f"unknown gallery action {args.action!r}: list, remove NAME or export [FILE]")


@command("verify")
def cmd_verify(args, extra) -> int:
    from edgecnn.faces import distance, read_image

    if args.calibrate:
        return _calibrate(args)
    if len(args.images) != 2:
        raise InputError("verify takes two images: edgecnn verify IMG1 IMG2 (or --calibrate DIR)")
    a, b = (read_image(p) for p in args.images)
    v = _verifier(args)
    ea, eb = v.embed(a, str(args.images[0])), v.embed(b, str(args.images[1]))
    d = distance(ea.vector, eb.vector)
    thr = args.threshold if args.threshold is not None else v.embedder.threshold
    result = {"distance": round(d, 4), "threshold": thr, "same": bool(d <= thr), "embedder": v.embedder.identity}
    print_json(result) if args.json else _console().print(
        f"{'same person' if result['same'] else 'different people'}: distance {d:.3f} (threshold {thr:.3f})"
    )
    return 0


def _calibrate(args) -> int:
    import itertools
    from pathlib import Path

    from edgecnn.faces import calibrate_threshold, distance, read_image

    root = Path(args.calibrate)
    if not root.is_dir():
        raise InputError(f"--calibrate {root} is not a folder of identity subfolders")
    v = _verifier(args)
    emb = []
    skipped = 0
    for person in sorted(d for d in root.iterdir() if d.is_dir()):
        for f in sorted(person.iterdir()):
            if f.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
                continue
            try:
                emb.append((person.name, v.embed(read_image(f), str(f)).vector))
            except InputError:
                skipped += 1
    if len({p for p, _ in emb}) < 2:
        raise InputError(f"--calibrate {root}: need faces of at least two people (subfolders), found {len({p for p, _ in emb})}")
    same, diff = [], []
    for (pa, ea), (pb, eb) in itertools.combinations(emb, 2):
        (same if pa == pb else diff).append(distance(ea, eb))
    result = calibrate_threshold(same, diff, args.far)
    result.update({"faces": len(emb), "skipped": skipped, "embedder": v.embedder.identity})
    if args.gallery:
        from edgecnn.gallery import Gallery

        Gallery(args.gallery, create=False).set_threshold(result["threshold"])
        result["saved_to"] = args.gallery
    print_json(result) if args.json else _console().print(
        f"threshold {result['threshold']:.3f} ({result['rule']}): FAR {result['far']:.3f}, FRR {result['frr']:.3f}, "
        f"EER {result['eer']:.3f}, AUC {result['auc']:.3f} over {result['pairs']['same']} same / {result['pairs']['different']} different pairs"
    )
    return 0


@command("identify")
def cmd_identify(args, extra) -> int:
    from edgecnn.faces import read_image
    from edgecnn.gallery import Gallery

    img = read_image(args.image)
    g = Gallery(_gallery_path(args), create=False)
    v = _verifier(args)
    g.check_embedder(v.embedder.identity, v.embedder.dim)
    e = v.embed(img, str(args.image))
    thr = args.threshold if args.threshold is not None else float(g.meta("threshold") or v.embedder.threshold)
    m = g.identify(e.vector, thr)
    result = m.as_dict()
    print_json(result) if args.json else _console().print(
        f"{m.name or 'unknown'} (distance {m.distance:.3f} to {m.nearest}, threshold {thr:.3f})"
    )
    return 0


@command("bundle")
def cmd_bundle(args, extra) -> int:
    from edgecnn.bundle import make_bundle

    m = make_bundle(args.target, args.output, gallery=args.gallery, embedder=args.embedder, with_embedder=not args.no_embedder, progress=not args.json)
    print_json(m) if args.json else _console().print(
        f"bundle for {m['target']} in {m['output']}: " + ", ".join(m["files"]) + f"\non the device: edgecnn camera --bundle {m['output']} --verify"
    )
    return 0


# ---------------------------------------------------------------- demo


@command("demo")
def cmd_demo(args, extra) -> int:
    from edgecnn.demo import run_demo

    con = _console(stderr=True)
    if not args.json:
        con.print("edgecnn demo: clip from real photos -> BlazeFace + FaceNet (converted once, cached) -> gallery -> camera loop")
    r = run_demo(args.output, target=args.target, progress=not args.json)
    if args.json:
        print_json(r)
        return 0
    s = r["summary"]
    out = _console()
    out.print(f"enrolled obama from {', '.join(r['enrolled']['obama'])} with {r['embedder']}")
    out.print(f"{s['frames']} frames · {s['fps']:.1f} FPS · model p50 {s['latency_ms']['p50']:.1f} ms · "
              f"{s['frames_with_detections']} frames with faces · identities {s.get('identities')}")
    out.print(f"annotated video: {r['output']}   (input clip: {r['input']})")
    return 0


# ---------------------------------------------------------------- train


@command("train")
def cmd_train(args, extra) -> int:
    from pathlib import Path

    out = Path(args.output or f"{args.what}.keras")
    if out.suffix != ".keras":
        raise InputError(f"--output must end in .keras, got {out}")
    if not out.parent.exists():
        raise InputError(f"output folder does not exist: {out.parent}")
    if args.what == "yolo":
        from edgecnn.models.training import save_with_sidecar, train_yolo

        model, report, _ = train_yolo(n_train=args.images, epochs=args.epochs or 30, input_size=args.input_size or 96, seed=args.seed,
                                      progress=not args.json)
        save_with_sidecar(model, out, {"task": "detection", "labels": report["labels"], "anchors": report["anchors"], "preprocess": report["preprocess"]})
    else:
        from edgecnn.calibration.datasets import bundled, image_folder
        from edgecnn.models.training import save_with_sidecar, train_siamese

        if not args.data:
            raise InputError("train siamese needs --data DIR (one folder per identity) or --data bundled:digits")
        if args.data == "bundled:digits":
            data = bundled("digits", None)
        else:
            if not Path(args.data).is_dir():
                raise InputError(f"--data {args.data} is not a folder of identity subfolders")
            data = image_folder(args.data, None, progress=not args.json, with_classes=True)
            if not data.images:
                raise InputError(f"--data {args.data}: no images in identity subfolders")
        model, report = train_siamese(data, holdout=args.holdout, backbone=args.backbone, embedding_dim=args.embedding_dim,
                                      epochs=args.epochs or 30, input_size=args.input_size, seed=args.seed, progress=not args.json)
        save_with_sidecar(model, out, {"task": "embedding", "preprocess": report["preprocess"], "threshold": report["threshold"]})
    report["output"] = str(out)
    if args.report:
        write_json_atomic(args.report, report)
    if args.json:
        print_json(report)
    elif args.what == "yolo":
        _console().print(f"{out}: mAP@0.5 {report['map50']:.3f} on {report['val_images']} held-out generated scenes "
                         f"({', '.join(f'{k} {v:.3f}' for k, v in report['ap50_per_class'].items())})\nnext: edgecnn convert {out} --precision int8")
    else:
        _console().print(f"{out}: on {len(report['heldout_identities'])} identities never seen in training: ROC AUC {report['roc_auc']:.3f}, "
                         f"EER {report['eer']:.3f} (threshold {report['threshold']:.3f})")
    return 0


# ---------------------------------------------------------------- parser and main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgecnn",
        description="Build, quantize, convert and measure CNNs for phones, Raspberry Pi and Coral Edge TPU.",
    )
    p.add_argument("--version", action="version", version=f"edgecnn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sp = sub.add_parser("models", help="list every registered model with params, MACs and peak memory")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sp = sub.add_parser(
        "inspect",
        help="per-layer table of one model (builder options as --name value)",
        description="Per-layer table (name, output shape, params, MACs) and totals of one model.",
        epilog="Builder options are the builder's own arguments: --input-size N, --classes N, --alpha A, "
        "--phi P, --include-top false, ... An unknown option lists the valid ones.",
    )
    sp.add_argument("name", help="registered model name (see: edgecnn models)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sp = sub.add_parser(
        "convert",
        help="quantize and convert a model to .tflite, with a report",
        description="Convert SOURCE (a registry name with builder options, a .keras file, a SavedModel folder or a TF1 "
        "frozen .pb) to TFLite at one precision, calibrated on real data, and report size, op coverage per delegate, "
        "accuracy lost against the float model and latency.",
        epilog="Builder options for a registry name: --input-size N, --classes N, --alpha A, ... (see edgecnn inspect).",
    )
    sp.add_argument("source")
    sp.add_argument("--precision", help="fp32 | fp16 | dynamic | int8 | int16x8 (default: the target's)")
    sp.add_argument("--target", help="cpu | rpi4 | rpi5 | android-gpu | coral (default cpu; see edgecnn targets)")
    sp.add_argument("--io", help="input/output type of int8 models: float | int8 | uint8")
    sp.add_argument("--output", help="the .tflite to write (default <name>_<precision>.tflite next to the source)")
    sp.add_argument("--calibration", default="bundled", help="image folder, video file, 'bundled' (real photos), 'bundled:digits', 'bundled:faces' or 'none'")
    sp.add_argument("--samples", type=int, default=200, help="calibration samples (default 200)")
    sp.add_argument("--held-out", type=int, default=None, help="samples kept out of calibration to measure accuracy (default 20%%, at most 50)")
    sp.add_argument("--allow-flex", action="store_true", help="allow TensorFlow (Flex) ops where no builtin exists")
    sp.add_argument("--inputs", help="frozen graph: input tensor name")
    sp.add_argument("--outputs", help="frozen graph: output tensor name(s), comma-separated")
    sp.add_argument("--weights", help="weights file for a registry model (.weights.h5)")
    sp.add_argument("--normalize", help="unit [0,1] | symmetric [-1,1] | imagenet | raw | whiten (per-image, FaceNet)")
    sp.add_argument("--color", help="rgb | bgr | gray: channel order the model expects")
    sp.add_argument("--resize", help="stretch | letterbox | crop")
    sp.add_argument("--labels", help="class names: a text file (one per line) or a comma-separated list")
    sp.add_argument("--eval", help="folder of class subfolders: report real top-1 of float and converted model")
    sp.add_argument("--keep-float", help="int8: 'auto' keeps the worst layers in float when accuracy drops, or LAYER,LAYER")
    sp.add_argument("--no-layers", action="store_true", help="skip the per-layer quantization error analysis")
    sp.add_argument("--report", help="write the JSON report to this file")
    sp.add_argument("--html", help="write an HTML report with plots to this file")
    sp.add_argument("--json", action="store_true", help="print the JSON report")

    sp = sub.add_parser(
        "camera",
        help="live detection (and face verification) on a camera, stream or video file",
        description="Run a detector on every frame of a live source (newest frame only, drops counted) or a video file "
        "(every frame in order), draw boxes, labels, scores, FPS and latency, show or write the result, print a summary.",
    )
    sp.add_argument("--source", help="camera index (default 0), video file or stream URL")
    sp.add_argument("--detector", default="blazeface", help="blazeface | blazeface-full | MODEL.tflite (an edgecnn YOLO grid)")
    sp.add_argument("--target", help="target profile (default cpu)")
    sp.add_argument("--threads", type=int, help="interpreter threads (default: the target's)")
    sp.add_argument("--verify", action="store_true", help="label each face with its gallery match (edgecnn enroll)")
    sp.add_argument("--gallery", help="gallery file for --verify (default in the user data folder)")
    sp.add_argument("--embedder", help="embedding .tflite for --verify (default: the converted FaceNet)")
    sp.add_argument("--bundle", help="a folder made by 'edgecnn bundle': detector, embedder and gallery from there")
    sp.add_argument("--output", help="write the annotated video (.mp4 with mp4v, .avi with MJPG)")
    sp.add_argument("--headless", action="store_true", help="no window even where there is a display")
    sp.add_argument("--max-frames", type=int, help="stop after this many frames")
    sp.add_argument("--realtime", action="store_true", help="pace a file like a camera (frames may be dropped)")
    sp.add_argument("--min-score", type=float, help="detection score threshold")
    sp.add_argument("--strict", action="store_true", help="fail when the target's delegate is absent")
    sp.add_argument("--keep-per-frame", action="store_true", help="include every frame's detections in --json")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")

    def face_opts(sp, gallery=True):
        sp.add_argument("--embedder", help="embedding .tflite (default: FaceNet converted for the target, cached)")
        sp.add_argument("--bundle", help="use the embedder (and gallery) of a bundle folder")
        sp.add_argument("--target", help="target profile (default cpu)")
        sp.add_argument("--strict", action="store_true", help="several faces in an image is an error, not 'the largest'")
        if gallery:
            sp.add_argument("--gallery", help="gallery file (default in the user data folder)")
        sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("enroll", help="add a person's face(s) to the gallery")
    sp.add_argument("name")
    sp.add_argument("images", nargs="+")
    sp.add_argument("--keep-images", action="store_true", help="also store the aligned face crops")
    sp.add_argument("--replace", action="store_true", help="replace this person's earlier embeddings")
    face_opts(sp)

    sp = sub.add_parser("gallery", help="list, remove or export the enrolled identities")
    sp.add_argument("action", choices=["list", "remove", "export"])
    sp.add_argument("name", nargs="?", help="NAME for remove, FILE for export")
    sp.add_argument("--gallery")
    sp.add_argument("--bundle")
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("verify", help="are two face photos the same person? (or --calibrate a threshold)")
    sp.add_argument("images", nargs="*")
    sp.add_argument("--threshold", type=float, help="distance threshold (default: the embedder's)")
    sp.add_argument("--calibrate", metavar="DIR", help="choose a threshold from a folder of identity subfolders")
    sp.add_argument("--far", type=float, help="with --calibrate: the largest threshold with false-accept rate <= FAR (default: equal error rate)")
    face_opts(sp)

    sp = sub.add_parser("identify", help="who is in this photo? (gallery match or null)")
    sp.add_argument("image")
    sp.add_argument("--threshold", type=float)
    face_opts(sp)

    sp = sub.add_parser("bundle", help="gather what a device needs (detector, embedder, gallery) for a target")
    sp.add_argument("--target", required=True, help="cpu | rpi4 | rpi5 | android-gpu | coral")
    sp.add_argument("--output", required=True, help="the bundle folder to write")
    sp.add_argument("--gallery", help="gallery to include (default: the user's, if any)")
    sp.add_argument("--embedder", help="a ready embedder .tflite instead of converting FaceNet")
    sp.add_argument("--no-embedder", action="store_true", help="detectors only")
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("demo", help="the whole workflow on bundled real data: convert, enrol, camera loop, annotated video")
    sp.add_argument("--output", default="edgecnn-demo", help="folder for the clip, gallery and annotated video (default ./edgecnn-demo)")
    sp.add_argument("--target", help="target profile for the models (default cpu)")
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("train", help="train the yolo detector on generated scenes, or a siamese embedder with triplet loss")
    sp.add_argument("what", choices=["yolo", "siamese"])
    sp.add_argument("--output", help="the .keras to write (a .edgecnn.json beside it carries labels/anchors/preprocessing)")
    sp.add_argument("--data", help="siamese: folder with one subfolder per identity, or bundled:digits")
    sp.add_argument("--holdout", type=int, help="siamese: identities held out for the verification test (default 30%%)")
    sp.add_argument("--backbone", default="lenet5", help="siamese: registered backbone (default lenet5)")
    sp.add_argument("--embedding-dim", type=int, default=32)
    sp.add_argument("--images", type=int, default=1600, help="yolo: generated training scenes (default 1600)")
    sp.add_argument("--epochs", type=int)
    sp.add_argument("--input-size", type=int)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--report", help="write the JSON report to this file")
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("targets", help="list the device target profiles")
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser(
        "profile",
        help="latency of a .tflite on this machine (no TensorFlow needed)",
        description="Load time, first inference, then p50/p90/p99/min/max/mean/std over the counted runs, a thread sweep, "
        "peak RSS and the machine. Runs with only numpy, OpenCV and the LiteRT runtime installed.",
    )
    sp.add_argument("model", nargs="?", help="the .tflite file")
    sp.add_argument("--target", help="target profile (delegate, threads); default cpu")
    sp.add_argument("--threads", help="thread counts to sweep, e.g. 1,2,4 (default: the target's)")
    sp.add_argument("--runs", type=int, help="counted runs (default 50)")
    sp.add_argument("--seconds", type=float, help="run for this long instead of a run count")
    sp.add_argument("--warmup", type=int, default=3, help="warm-up runs before counting (default 3)")
    sp.add_argument("--strict", action="store_true", help="fail (exit 2) when the target's delegate is absent")
    sp.add_argument("--predict", help="also estimate latency on rpi4 | rpi5 | coral from the model's MACs")
    sp.add_argument("--compare", nargs="+", metavar="RESULT.json", help="line up saved results (from --json/--save) in one table and plot")
    sp.add_argument("--save", help="write this run's JSON result to a file (for --compare later)")
    sp.add_argument("--label", help="name for this run in comparisons")
    sp.add_argument("--plot", help="write a PNG plot of the latencies")
    sp.add_argument("--json", action="store_true")
    return p


# Commands whose unknown --options are builder knobs rather than mistakes.
_ACCEPTS_KNOBS = {"inspect", "convert"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if extra and args.command not in _ACCEPTS_KNOBS:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(_COMMANDS[args.command](args, extra) or 0)
    except EdgecnnError as exc:
        print(f"edgecnn {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"edgecnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if os.environ.get("EDGECNN_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"edgecnn {args.command}: internal error: {type(exc).__name__}: {msg} (set EDGECNN_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
