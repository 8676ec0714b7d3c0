"""The on-device camera loop: capture beside inference, overlay, optional display and video output.

A live source (camera index or stream URL) is read by a capture thread that keeps only the newest
frame (the loop never lags behind; frames it could not take are counted as dropped). A file source
is processed frame by frame in order, none dropped, unless ``realtime`` paces it like a camera.
Video encoding runs in a third thread, so decoding, inference and encoding overlap. Where nothing
needs the frames in order (no video, window or labels), the workers keep their own tallies.
Device-side: numpy, OpenCV and LiteRT.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter, deque

from edgecnn._progress import progress as progress_bar
from edgecnn.errors import EdgecnnError, InputError, first_line, note, shut_down, start_threads
from edgecnn.overlay import Hud, LabelSmoother, draw, has_display
from edgecnn.video_io import (
    FrameSource,
    Handoff,
    PartialVideo,
    capture_frame_count,
    default_source,
    get_unless,
    plan_frames,
    put_unless,
)

_STOP = object()


def run(
    source=None,
    detector="blazeface",
    target=None,
    threads=None,
    output=None,
    headless=False,
    max_frames=None,
    realtime=False,
    live=None,
    verify=None,
    bundle=None,
    min_score=None,
    strict=False,
    progress=False,
    reconnect: int = 3,
    warn=None,
    keep_per_frame: bool = False,
    workers: int | None = None,
    max_memory: int | None = None,
) -> dict:
    """Run the loop; returns the summary (frames, dropped, fps, latency, detections, ...).

    ``keep_per_frame`` adds every frame's detections (memory grows with the run: not for live use).
    ``max_memory``: bytes the frames in flight may take (default: a share of the memory available).
    ``workers``: interpreters running frames side by side, each with ``threads // workers`` threads (a file
    on the CPU with 2 or more threads: 2, else 1; a live source always 1: latency counts more there)."""
    import cv2

    from edgecnn.detectors import open_detector
    from edgecnn.profiling import summarize

    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be a positive integer, got {max_frames}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise InputError(f"--workers must be a positive integer, got {workers}")
    det = open_detector(detector, target=target, threads=threads, bundle=bundle, strict=strict, warn=warn, min_score=min_score)
    # a file is decoded on one FFmpeg thread: more would take CPU the inference needs
    src = FrameSource(default_source() if source is None else source, live=live, realtime=realtime, reconnect=reconnect, decode_threads=1)
    dets_by_worker = [det]
    k = workers or (2 if det.model.threads >= 2 else 1)
    if k > 1 and (src.live or not det.model.can_twin):
        if workers:  # asked for, and not possible: say why once
            why = "a live source runs one interpreter on all threads" if src.live else f"{det.model.delegate.active} is one device"
            (warn or note)(f"--workers {workers} ignored: {why}")
        k = 1
    if k > 1:  # frame-parallel: worker w takes frames w, w + k, ...; results are taken back in order
        try:
            each = max(1, det.model.threads // k)
            dets_by_worker = [det.twin(each) for _ in range(k)]
            det = dets_by_worker[0]  # the first interpreter (all threads) is let go
        except BaseException:
            src.close()
            raise
    writer = None
    try:
        if output:  # finalised (end, q, Ctrl-C, SIGTERM) under a temporary name, then renamed
            writer = PartialVideo(output, src.fps, src.frame_size)
    except BaseException:
        src.close()
        raise
    show = not headless and has_display()
    if not headless and not show and os.environ.get("DISPLAY"):
        (warn or note)(f"display {os.environ['DISPLAY']} does not answer: running headless (pass --headless to say so)")
    smoother = LabelSmoother() if verify is not None else None
    # Three stages overlap: decoding (a live source's capture thread; for a file a reader thread, or the
    # workers in turn), inference with detection decoding (this thread, or k worker threads whose results
    # this thread takes back in frame order, labels and draws), encoding (the writer thread). Queues are
    # bounded: a file blocks (no frame dropped), a live source drops the oldest frame.
    w, h = src.frame_size
    memory = plan_frames(w * h * 3, len(dets_by_worker), max_memory)
    if not memory["fits"]:
        (warn or note)(f"--max-memory {memory['budget_mb']} MB is below the {memory['frames_in_flight_max']} frames of "
                       f"{memory['frame_mb']} MB the loop needs at least: running with those")
    depth = memory["queue_depth"]
    # Who decodes a file with several interpreters: with no encoder competing for the cores, each worker
    # decodes its own frames, taking turns (a thread and a hand-off fewer a frame); with one, a reader
    # thread decoding ahead keeps the workers fed when the encoder takes their core (benchmarks/camera.py).
    in_turn = len(dets_by_worker) > 1 and writer is None and not src.live
    # And where nothing needs the frames in order (no video, no window, no labels to smooth), each worker
    # keeps the tally of its own frames: no result handed to this thread per frame, which only waits.
    own = in_turn and not show and verify is None
    counted = own and not keep_per_frame  # and where only the number of detections is asked for, no objects
    in_qs = [] if src.live or in_turn else [Handoff(maxsize=depth) for _ in dets_by_worker]
    res_qs = [Handoff(maxsize=depth) for _ in dets_by_worker] if len(dets_by_worker) > 1 and not own else []
    turns = [threading.Lock() for _ in dets_by_worker] if in_turn else []  # worker w decodes while it holds turns[w], then passes it on
    for lock in turns[1:]:
        lock.acquire()
    out_q: queue.Queue = Handoff(maxsize=memory["writer_depth"])
    written, writer_error, abandoned = [0], [], [False]
    # CPU seconds of the invoke per interpreter, and of encoding, on each thread's own clock. overhead_ms: the process's CPU time
    # less these, the interpreters' pools and decoding (the reader's clock: one FFmpeg thread; GStreamer's own threads count)
    invoke_cpu, encode_cpu = [0.0 for _ in dets_by_worker], [0.0]
    # per worker (the ordered loop's in the first): [frames, with detections, detections], latencies, (index, detections)
    tallies, lat_by_worker, kept_by_worker = [[0, 0, 0] for _ in dets_by_worker], [[] for _ in dets_by_worker], [[] for _ in dets_by_worker]
    errors, taken = [], [0]  # own tallies: (frame index, error), the first raised once the workers end
    stop = threading.Event()
    # A reader thread also resizes a file's frames (still in its cache) into a ring of uint8 pixel buffers
    # that the workers normalise into their input tensors, handed round-robin: it is at most (depth + 1) * k
    # frames ahead of a frame in use (it blocks on that worker's full queue): (depth + 2) * k are enough.
    ring = [det.input_buffer() for _ in range((depth + 2) * len(in_qs))]

    def put(q, item):
        put_unless(q, item, stop)

    def get(q):
        return get_unless(q, stop)

    def reader_loop():
        n, item = 0, None
        try:
            while not stop.is_set():
                item = src.read()
                if item is None:
                    break
                if ring:
                    x, tr = det.prepare(item[1], out=ring[n % len(ring)])
                    item = (item[0], item[1], x, tr)
                put(in_qs[n % len(in_qs)], item)
                n += 1
        except Exception as exc:  # noqa: BLE001 - a failed read or prepare ends the loop with its error, not a hang
            item = exc
        for q in in_qs:  # the end (None) or the error, to every worker
            put(q, item)

    def infer(w, item):
        """(frame, detections (their number where only that is kept), latency ms): worker w's model and
        its decoding, timed."""
        d = dets_by_worker[w]
        if len(item) == 4:  # its pixels prepared by the reader thread
            _, frame, x, tr = item
        else:  # prepared here (a worker, or a live source), straight into the input tensor
            frame, x = item[1], None
            tr = d.model.load(frame)
        t0 = time.perf_counter()  # the latency is the model's and its decoding's, wherever the frame was prepared
        dets = d.count(frame, x, tr) if counted else d.infer(frame, x, tr)
        invoke_cpu[w] += d.model.invoke_cpu_seconds
        return frame, dets, (time.perf_counter() - t0) * 1e3

    def take(w):
        """Worker w's next frame: from its queue (the reader thread's), or decoded here in its turn."""
        if not in_turn:
            return get(in_qs[w])
        mine, after = turns[w], turns[(w + 1) % len(turns)]
        while not mine.acquire(timeout=0.1):
            if stop.is_set():
                return None
        try:
            if stop.is_set() or (own and max_frames and taken[0] >= max_frames):
                return None
            taken[0] += 1  # frames handed out (a realtime source's skipped frames are not), under the turn
            return src.read()
        except Exception as exc:  # noqa: BLE001 - a failed read ends the loop with its error, in frame order
            if own:
                errors.append((src.frames_read, exc))
                stop.set()
            return exc
        finally:
            after.release()

    def worker_loop(w):
        q_out = None if own else res_qs[w]
        while True:
            item = take(w)
            if item is None or isinstance(item, Exception):
                if not own:
                    put(q_out, item)
                return
            try:
                result = infer(w, item)
            except Exception as exc:  # noqa: BLE001 - raised by the main thread, in frame order
                if own:
                    errors.append((item[0], exc))
                    stop.set()
                else:
                    put(q_out, exc)
                return
            if not own:
                put(q_out, result)
                continue
            try:
                tally(w, item[0], *result)
            except Exception as exc:  # noqa: BLE001 - never a worker dying in silence
                errors.append((item[0], exc))
                stop.set()
                return

    def tally(w, index, frame, dets, latency):
        """Count a frame's detections into worker w's tallies and hand the frame back (None: kept)."""
        t = tallies[w]
        t[0] += 1
        lat_by_worker[w].append(latency)
        if dets:
            t[1] += 1
            t[2] += dets if counted else len(dets)
        if keep_per_frame:
            kept_by_worker[w].append((index, [d.as_dict() for d in dets]))
        src.release(frame)

    def next_result(n):
        if res_qs:
            return get(res_qs[n % len(res_qs)])
        item = src.read() if src.live else get(in_qs[0])
        return item if item is None or isinstance(item, Exception) else infer(0, item)

    def writer_loop():
        while True:
            frame = out_q.get()
            if frame is _STOP:
                return
            if abandoned[0]:  # an error ended the loop: the rest is not encoded, only let go
                continue
            try:
                c0 = time.thread_time()
                writer.write(frame)
                encode_cpu[0] += time.thread_time() - c0
                written[0] += 1
            except Exception as exc:  # noqa: BLE001 - a full disk and friends: said at the end; this thread drains on
                writer_error.append(first_line(exc))
                abandoned[0] = True
            src.release(frame)

    def hand_to_writer(item):
        if src.live:
            while True:
                try:
                    out_q.put_nowait(item)
                    return
                except queue.Full:  # live: the oldest waiting frame goes
                    try:
                        src.release(out_q.get_nowait())
                    except queue.Empty:
                        pass
        out_q.put(item)

    threads_started = [threading.Thread(target=writer_loop, name="edgecnn-writer", daemon=True)] if writer is not None else []
    if in_qs:
        threads_started.append(threading.Thread(target=reader_loop, name="edgecnn-reader", daemon=True))
    if res_qs or own:
        threads_started += [threading.Thread(target=worker_loop, args=(w,), name=f"edgecnn-worker-{w}", daemon=True) for w in range(len(dets_by_worker))]
    frames = 0
    names: Counter = Counter()
    quit_reason = "end of source"
    recent, hud = deque(maxlen=30), Hud()  # the FPS over the last 30 frames; the status line (overlay.Hud), rendered every few frames
    total = max_frames or (capture_frame_count(src.cap) if not src.live else None)
    def clocks():  # CPU seconds: the process, decoding (the reading thread's clock), the interpreters' own pools
        return time.process_time(), src.decode_seconds, sum(d.model.pool_cpu_seconds() for d in dets_by_worker)
    t_start, cpu = time.perf_counter(), [clocks()]
    try:
        start_threads(threads_started)  # inside the try: a signal meanwhile still stops the ones started
        with progress_bar("camera", total or None, progress) as tick:
            if own:  # the workers tally their own frames: wait for them (Ctrl-C still reaches this thread)
                done = 0
                for t in threads_started:
                    while t.is_alive():
                        t.join(0.1)
                        if progress:
                            n = sum(c[0] for c in tallies)
                            tick(advance=n - done, status=f"{n / (time.perf_counter() - t_start):.1f} FPS")
                            done = n
                if errors:  # the first frame's error, as the ordered loop raises it
                    raise min(errors, key=lambda e: e[0])[1]
            while not own:  # the ordered loop: results taken back frame by frame
                result = next_result(frames)
                if result is None:
                    break
                if isinstance(result, Exception):
                    raise result
                t0 = time.perf_counter()
                frame, dets, latency = result
                if verify is not None and dets:
                    verify.label(frame, dets)
                    smoother.update(dets)
                    names.update(d.name for d in dets)
                tally(0, frames, None, dets, latency)  # the frame is drawn, shown and written below
                frames += 1
                recent.append(t0)
                fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
                if writer is not None or show:
                    # drawn here: OpenCV sets up its text rendering once per thread, so a long-lived thread draws
                    draw(frame, dets, fps, latency, hud=hud)
                if show:  # shown before the frame goes to the writer, which hands it back to be read into
                    try:
                        cv2.imshow("edgecnn camera", frame)
                        if (cv2.waitKey(1) & 0xFF) == ord("q"):
                            quit_reason = "q pressed"
                    except cv2.error:  # an OpenCV without a GUI (opencv-python-headless)
                        show = False
                        (warn or note)("this OpenCV has no window support (opencv-python-headless): running headless")
                if writer is not None:
                    hand_to_writer(frame)  # encoded there, then released
                else:
                    src.release(frame)
                if quit_reason == "q pressed":
                    break
                if progress:
                    tick(advance=1, status=f"{fps:.1f} FPS")
                if max_frames and frames >= max_frames:
                    quit_reason = "max frames"
                    break
    except KeyboardInterrupt as exc:
        quit_reason = "terminated" if type(exc).__name__ == "Terminated" else "interrupted"
    except BaseException:
        abandoned[0] = True  # the partial video goes, once the writer thread is done with it
        raise
    finally:  # to the end whatever signals come. Every wait in the threads is bounded and checks stop, so no join is
        # timed; the threads end before the capture and the writer are released (released mid-read or mid-write, they crash)
        def finish_video():
            writer.finish(keep=not writer_error and not abandoned[0])

        held = shut_down([stop.set, lambda: out_q.put(_STOP), *[t.join for t in threads_started if t.ident is not None],
                          lambda: cpu.append(clocks()), src.close, *([finish_video] if writer is not None else []),
                          *([cv2.destroyAllWindows] if show else [])])
    if held and quit_reason not in ("interrupted", "terminated"):
        quit_reason = "terminated" if held[0] == 15 else "interrupted"  # SIGTERM
    elapsed = time.perf_counter() - t_start
    frames, with_dets, total_dets = (sum(c[i] for c in tallies) for i in range(3))
    latencies = [x for lat in lat_by_worker for x in lat]
    per_frame = [d for _, d in sorted((p for kept in kept_by_worker for p in kept), key=lambda p: p[0])]
    if max_frames and frames >= max_frames and quit_reason == "end of source":
        quit_reason = "max frames"
    if writer_error:
        raise EdgecnnError(f"writing {output} failed: {writer_error[0]}")
    lat = summarize(latencies) if latencies else {}
    process, decoding, pools = (b - a for a, b in zip(cpu[0], cpu[-1]))  # the start and the end of the loop
    invoke = sum(invoke_cpu) + pools  # on the invoking threads' clocks, and on the interpreters' pools
    summary = {
        "source": str(src.source),
        "live": src.live,
        "detector": detector,
        "target": det.model.target.name,
        "delegate": det.model.delegate.active,
        "frames": frames,
        "frames_read": src.frames_read,
        "dropped": src.dropped,
        "reconnects": src.reconnects,
        "longest_gap_s": round(src.longest_gap, 3),
        "seconds": round(elapsed, 3),
        "fps": round(frames / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_ms": {"p50": lat.get("p50"), "p90": lat.get("p90"), "mean": lat.get("mean")},
        # per frame, edgecnn's own work: everything but video decode, the model's invoke and video encode
        "overhead_ms": round((process - decoding - invoke - encode_cpu[0]) * 1e3 / frames, 4) if frames else None,
        "invoke_ms": round(invoke * 1e3 / frames, 4) if frames else None,
        "workers": len(dets_by_worker),
        "decoded_by": "capture thread" if src.live else "workers in turn" if in_turn else "reader thread",
        "threads": dets_by_worker[0].model.threads,
        "frames_with_detections": with_dets,
        "detections": total_dets,
        "ended_by": quit_reason,
        "output": str(output) if output else None,
        "frames_written": written[0] if output else 0,
        "memory": memory,
    }
    if keep_per_frame:
        summary["per_frame"] = per_frame
    if verify is not None:
        summary["identities"] = dict(names)
    return summary
