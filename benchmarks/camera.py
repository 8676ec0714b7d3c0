"""FPS of `edgecnn camera` against a hand-written sequential OpenCV loop, same model, clip and threads.

    python benchmarks/camera.py [--frames 240] [--threads 1] [--detector blazeface]

The sequential loop reads, prepares, invokes, decodes, draws and writes each frame in turn; edgecnn's
loop decodes in a capture thread and draws/encodes in a writer thread. Also reported: the model's bare
invoke bound (1000 / p50 invoke ms). Goal: >= 1.25x the sequential loop, close to the bound.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import progress, save, table  # noqa: E402


def sequential(clip, out, detector):
    import cv2

    from edgecnn.camera import draw

    cap = cv2.VideoCapture(str(clip))
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 30
    ok, frame = cap.read()
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps_in, (w, h))
    n = 0
    t0 = time.perf_counter()
    while ok:
        dets = detector.detect(frame)
        draw(frame, dets, 0.0, 0.0)
        writer.write(frame)
        n += 1
        ok, frame = cap.read()
    elapsed = time.perf_counter() - t0
    writer.release()
    return n / elapsed


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--detector", default="blazeface")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", default="960x540", help="clip frame size")
    args = ap.parse_args(argv)

    from edgecnn import camera
    from edgecnn.demo_data import make_face_clip
    from edgecnn.detectors import open_detector
    from edgecnn.profiling import summarize, time_invocations

    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        progress(f"making a {args.frames}-frame {w}x{h} clip from real photos ...")
        make_face_clip(clip, frames=args.frames, size=(w, h))
        det = open_detector(args.detector, threads=args.threads)
        x = det.model.prepare(__import__("cv2").imread(str(Path(camera.__file__).parent / "data" / "faces" / "obama.jpg")))
        _, times = time_invocations(det.model, x, runs=200, warmup=10)
        bound = 1000.0 / summarize(times)["p50"]
        seq, ours = [], []
        for r in range(args.rounds):
            progress(f"round {r + 1}/{args.rounds}")
            seq.append(sequential(clip, Path(tmp) / "seq.mp4", det))
            s = camera.run(source=str(clip), detector=args.detector, threads=args.threads, output=str(Path(tmp) / "ours.mp4"), headless=True)
            ours.append(s["fps"])
        seq_fps, our_fps = sorted(seq)[len(seq) // 2], sorted(ours)[len(ours) // 2]
        table(f"camera loop FPS on a {w}x{h} clip, {args.detector}, {args.threads} interpreter thread(s), median of {args.rounds}",
              ["loop", "FPS", "vs sequential", "vs invoke bound"],
              [["sequential OpenCV loop", seq_fps, 1.0, seq_fps / bound], ["edgecnn camera", our_fps, our_fps / seq_fps, our_fps / bound],
               ["bare invoke bound", bound, bound / seq_fps, 1.0]])
        out = save("camera", {"frames": args.frames, "size": [w, h], "threads": args.threads, "detector": args.detector, "sequential_fps": seq,
                              "edgecnn_fps": ours, "invoke_bound_fps": bound, "speedup": our_fps / seq_fps, "goal": ">= 1.25x sequential"})
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
