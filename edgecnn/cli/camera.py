"""``edgecnn camera``: the live loop (device side)."""

from __future__ import annotations

import os
import signal

from edgecnn.cli._output import (
    check_output_folder,
    console,
    fraction,
    no_extra,
    nonneg_int,
    positive_float,
    positive_int,
    print_json,
)
from edgecnn.core.errors import InputError, request_stop, stop_requested
from edgecnn.core.files import check_clashes


def add_parser(sub) -> None:
    sp = sub.add_parser(
        "camera",
        help="live detection (and face verification) on a camera, stream or video file",
        description="Run a detector on every frame of a live source (newest frame only, drops counted) or a video file "
        "(every frame in order), draw boxes, labels, scores, FPS and latency, show or write the result, print a summary.",
    )
    sp.add_argument("--source", help="camera index (default 0), video file or stream URL")
    sp.add_argument(
        "--detector",
        default="blazeface",
        help="blazeface | blazeface-full | MODEL.tflite: a MediaPipe SSD-anchor detector (BlazeFace, palm, pose), "
        "an edgecnn YOLO grid, a segmenter or a classifier",
    )
    sp.add_argument("--target", help="target profile (default cpu)")
    sp.add_argument("--threads", type=positive_int, help="interpreter threads (default: the target's)")
    sp.add_argument(
        "--workers",
        type=positive_int,
        help="a file's frames run side by side on this many interpreters, the threads shared among them "
        "(default: 2 on the CPU with 2+ threads; a live source: 1)",
    )
    sp.add_argument("--verify", action="store_true", help="label each face with its gallery match (edgecnn enroll)")
    sp.add_argument("--gallery", help="gallery file for --verify (default in the user data folder)")
    sp.add_argument("--embedder", help="embedding .tflite for --verify (default: the converted FaceNet)")
    sp.add_argument("--bundle", help="a folder made by 'edgecnn bundle': detector, embedder and gallery from there")
    sp.add_argument("--output", help="write the annotated video (.mp4 with mp4v, .avi with MJPG)")
    sp.add_argument("--headless", action="store_true", help="no window even where there is a display")
    sp.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    sp.add_argument("--realtime", action="store_true", help="pace a file like a camera (frames may be dropped)")
    sp.add_argument("--max-memory", type=positive_float, metavar="MB", help="memory the frames in flight may take (default: a quarter of the memory available)")
    sp.add_argument(
        "--reconnect", type=nonneg_int, default=3, help="times a dropped live source is reopened, with doubling back-off, before the loop ends (default 3)"
    )
    sp.add_argument("--min-score", type=fraction, help="detection score threshold")
    sp.add_argument("--strict", action="store_true", help="fail when the target's delegate is absent")
    sp.add_argument("--keep-per-frame", action="store_true", help="include every frame's detections in --json")
    sp.add_argument("--style", help="a live style filter instead of detection: a style number 0-25 or a blend (3:0.5,12:0.5)")
    sp.add_argument("--style-model", help="with --style: a converted style network .tflite (default: the bundle's, or converted once)")
    sp.add_argument("--style-size", type=positive_int, default=256, help="with --style: the network's side (default 256)")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(run=run)


def run(args, extra) -> int:
    from edgecnn.device import camera

    no_extra(extra)
    check_output_folder(args.output)
    check_clashes(
        {"--output": args.output},
        {
            "--source": args.source,
            "--detector": args.detector if os.path.exists(str(args.detector)) else None,
            "--embedder": args.embedder,
            "--gallery": args.gallery,
            "--bundle": args.bundle,
        },
    )
    if args.source is not None and not str(args.source).isdigit() and not os.path.exists(str(args.source)) and "://" not in str(args.source):
        raise InputError(f"video source not found: {args.source}")
    if args.style is not None:
        return _run_style(args)
    verify = None
    detector, bundle, target = args.detector, args.bundle, args.target
    if bundle:
        from edgecnn.device.bundle import open_bundle

        b = open_bundle(bundle)
        target = target or b.target
        if detector in ("blazeface", "blazeface-full") and b.role("detector" if detector == "blazeface" else "detector_full"):
            detector = str(b.role("detector" if detector == "blazeface" else "detector_full"))
    if args.verify:
        from edgecnn.device.faces import LiveVerifier

        embedder = args.embedder
        if not embedder and not bundle:
            from edgecnn.workstation.facenet import default_embedder

            embedder = default_embedder(target=target, progress=not args.json)
        verify = LiveVerifier.open(gallery=args.gallery, embedder=embedder, bundle=bundle, target=target)
    summary = camera.run(
        source=args.source,
        detector=detector,
        target=target,
        threads=args.threads,
        output=args.output,
        headless=args.headless,
        max_frames=args.max_frames,
        realtime=args.realtime,
        verify=verify,
        bundle=bundle,
        min_score=args.min_score,
        strict=args.strict,
        progress=not args.json,
        keep_per_frame=args.keep_per_frame,
        workers=args.workers,
        reconnect=args.reconnect,
        max_memory=int(args.max_memory * 2**20) if args.max_memory else None,
    )
    if summary["ended_by"] in ("interrupted", "terminated") and not stop_requested():
        request_stop(signal.SIGTERM if summary["ended_by"] == "terminated" else signal.SIGINT)  # a signal held while it stopped
    if args.json:
        print_json(summary)
        return 0
    lat = summary["latency_ms"]
    con = console()
    con.print(
        f"{summary['frames']} frames from {summary['source']} ({summary['ended_by']}) · {summary['fps']:.1f} FPS · "
        f"model p50 {lat['p50'] or 0:.1f} ms, p90 {lat['p90'] or 0:.1f} ms · dropped {summary['dropped']} · "
        f"{summary['frames_with_detections']} frames with detections, {summary['detections']} detections"
        + (f" · {summary['reconnects']} reconnects, longest gap {summary['longest_gap_s']:.1f} s" if summary["live"] else "")
        + (f" · wrote {summary['frames_written']} frames to {summary['output']}" if summary["output"] else "")
    )
    if summary.get("identities"):
        con.print("identities: " + ", ".join(f"{k} x{v}" for k, v in summary["identities"].items()))
    return 0


def _run_style(args) -> int:
    from edgecnn.cli.stylize import style_model
    from edgecnn.device.stylize import parse_style, resolve_stylizer, run_style

    if args.verify:
        raise InputError("--style is a filter: it does not detect or verify faces (drop --verify)")
    from edgecnn.device.stylize import is_painting

    check_clashes({"--output": args.output}, {"--style-model": args.style_model, "--style": args.style if is_painting(args.style) else None})
    if is_painting(args.style):
        from edgecnn.cli.stylize import arbitrary_stylizer
        from edgecnn.device.faces import read_image

        st, vector = arbitrary_stylizer(read_image(args.style), args.style_model, args.bundle, args.target, args.threads, progress=not args.json)
        s = run_style(
            source=args.source,
            stylizer=st,
            style=args.style,
            weights=vector,
            output=args.output,
            headless=args.headless,
            max_frames=args.max_frames,
            realtime=args.realtime,
            progress=not args.json,
        )
        return _print_style(args, s)
    parse_style(args.style)  # before any conversion
    target = args.target
    if args.bundle and not target:
        from edgecnn.device.bundle import open_bundle

        target = open_bundle(args.bundle).target
    model = style_model(args.style_model, args.bundle, args.style_size, "fp32", progress=not args.json)
    st = resolve_stylizer(model, args.bundle, target, args.threads)
    s = run_style(
        source=args.source,
        stylizer=st,
        style=args.style,
        output=args.output,
        headless=args.headless,
        max_frames=args.max_frames,
        realtime=args.realtime,
        progress=not args.json,
    )
    return _print_style(args, s)


def _print_style(args, s) -> int:
    if args.json:
        print_json(s)
        return 0
    console().print(
        f"{s['frames']} frames from {s['source']} ({s['ended_by']}) · style {s['style']} · {s['fps']:.1f} FPS · "
        f"p50 {s['latency_ms']['p50'] or 0:.1f} ms" + (f" · wrote {s['output']}" if s["output"] else "")
    )
    return 0
