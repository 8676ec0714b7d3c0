"""``edgecnn demo``: the whole workflow on bundled real data."""

from __future__ import annotations

from edgecnn.cli._output import console, no_extra, print_json


def add_parser(sub) -> None:
    sp = sub.add_parser("demo", help="the whole workflow on bundled real data: convert, enrol, camera loop, annotated video")
    sp.add_argument("--output", default="edgecnn-demo", help="folder for the clip, gallery and annotated video (default ./edgecnn-demo)")
    sp.add_argument("--target", help="target profile for the models (default cpu)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(run=run)


def run(args, extra) -> int:
    from edgecnn.workstation.demo import check_output, run_demo

    no_extra(extra)
    check_output(args.output)
    if not args.json:
        console(stderr=True).print("edgecnn demo: clip from real photos -> BlazeFace + FaceNet (converted once, cached) -> gallery -> camera loop")
    r = run_demo(args.output, target=args.target, progress=not args.json)
    if args.json:
        print_json(r)
        return 0
    s = r["summary"]
    out = console()
    out.print(f"enrolled obama from {', '.join(r['enrolled']['obama'])} with {r['embedder']}")
    out.print(
        f"{s['frames']} frames · {s['fps']:.1f} FPS · model p50 {s['latency_ms']['p50']:.1f} ms · "
        f"{s['frames_with_detections']} frames with faces · identities {s.get('identities')}"
    )
    out.print(f"annotated video: {r['output']}   (input clip: {r['input']})")
    return 0
