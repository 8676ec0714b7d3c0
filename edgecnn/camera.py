"""The on-device camera loop: capture beside inference, overlay, optional display and video output.

A live source (camera index or stream URL) is read by a capture thread that keeps only the newest
frame (the loop never lags behind; frames it could not take are counted as dropped). A file source
is processed frame by frame in order, none dropped, unless ``realtime`` paces it like a camera.
Drawing and video encoding run in a third thread, so decoding, inference and encoding overlap.
Device-side: numpy, OpenCV and LiteRT.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter, deque
from pathlib import Path

from edgecnn._progress import progress as progress_bar
from edgecnn.errors import EdgecnnError, InputError, first_line, note
from edgecnn.overlay import LabelSmoother, draw, has_display
from edgecnn.video_io import (
    capture_fps,
    capture_frame_count,
    default_source,
    is_live,
    open_capture,
    PartialVideo,
)

_STOP = object()


class FrameSource:
    """Frames from a camera, stream or file; ``read()`` returns (index, frame) or None at the end."""

    def __init__(self, source, live: bool | None = None, realtime: bool = False, reconnect: int = 3, backoff: float = 0.5):
        self.source = source
        self.live = is_live(source) if live is None else live
        self.realtime = realtime and not self.live
        self.reconnect_tries = reconnect
        self.backoff = backoff
        if not self.live:
            p = Path(str(source))
            if not p.exists():
                raise InputError(f"video source not found: {p}")
            if p.is_dir():
                raise InputError(f"video source {p} is a folder, not a video file")
        self.cap = open_capture(source)
        if not self.cap.isOpened():
            raise InputError(f"cannot open video source {source}: OpenCV cannot read it (unsupported format, missing camera or bad URL)")
        self.fps = capture_fps(self.cap, default=30.0)
        self.dropped = 0
        self.reconnects = 0
        self.frames_read = 0
        self._latest = None
        self._cond = threading.Condition()
        self._done = False
        self._thread = None
        self._t0 = None
        from edgecnn._quiet import quiet_stderr

        with quiet_stderr():
            first_ok, first = self.cap.read()
        if not first_ok or first is None:
            raise InputError(f"video source {source} opened but gave no frame (empty or unreadable file)")
        self._first = first
        if self.live:
            self._thread = threading.Thread(target=self._capture_loop, name="edgecnn-capture", daemon=True)
            self._thread.start()

    @property
    def frame_size(self) -> tuple[int, int]:
        h, w = self._first.shape[:2]
        return w, h

    # live: a thread keeps only the newest frame
    def _capture_loop(self):
        with self._cond:
            self._latest = (0, self._first)
            self.frames_read = 1
            self._cond.notify_all()
        index = 1
        while not self._done:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                if not self._reconnect():
                    break
                continue
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1  # the consumer never saw the previous one
                self._latest = (index, frame)
                self.frames_read += 1
                self._cond.notify_all()
            index += 1
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def _reconnect(self) -> bool:
        for attempt in range(self.reconnect_tries):
            if self._done:
                return False
            time.sleep(self.backoff * (2**attempt))
            self.cap.release()
            self.cap = open_capture(self.source)
            if self.cap.isOpened():
                ok, frame = self.cap.read()
                if ok and frame is not None:
                    self.reconnects += 1
                    with self._cond:
                        self._latest = (self.frames_read, frame)
                        self.frames_read += 1
                        self._cond.notify_all()
                    return True
        return False

    def read(self):
        if self.live:
            with self._cond:
                while self._latest is None and not self._done:
                    self._cond.wait(timeout=0.5)
                if self._latest is None:
                    return None
                item, self._latest = self._latest, None
                return item
        if self._first is not None:
            frame, self._first = self._first, None
            self.frames_read = 1
            self._t0 = time.perf_counter()
            return 0, frame
        if self.realtime:
            # pace like a camera: skip the frames whose time has passed
            due = int((time.perf_counter() - self._t0) * self.fps)
            while self.frames_read < due:
                if not self.cap.grab():
                    return None
                self.frames_read += 1
                self.dropped += 1
            wait = self.frames_read / self.fps - (time.perf_counter() - self._t0)
            if wait > 0:
                time.sleep(wait)
        ok, frame = self.cap.read()
        if not ok or frame is None:
            return None
        self.frames_read += 1
        return self.frames_read - 1, frame

    def close(self):
        self._done = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.cap.release()


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
) -> dict:
    """Run the loop; returns the summary (frames, dropped, fps, latency, detections, ...).

    ``keep_per_frame`` adds every frame's detections (memory grows with the run: not for live use).
    """
    import cv2

    from edgecnn.detectors import open_detector
    from edgecnn.profiling import summarize

    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be a positive integer, got {max_frames}")
    det = open_detector(detector, target=target, threads=threads, bundle=bundle, strict=strict, warn=warn, min_score=min_score)
    src = FrameSource(default_source() if source is None else source, live=live, realtime=realtime, reconnect=reconnect)
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
    # Three stages overlap: decoding (the capture thread of a live source, a reader thread for a file),
    # inference with detection decoding (this thread), drawing with encoding (the writer thread).
    # Queues are bounded: a file blocks (no frame dropped), a live source drops the oldest frame.
    depth = 4
    in_q = None if src.live else queue.Queue(maxsize=depth)
    out_q: queue.Queue = queue.Queue(maxsize=8)
    written = [0]
    writer_error = []
    draw_seconds = [0.0]
    prep_seconds = [0.0]  # preprocessing done in the reader thread (a file's frames)
    stop = threading.Event()
    # a file's frames are prepared in the reader thread, into a ring of input buffers: at most depth
    # queued, one being prepared, one in the interpreter, so depth + 2 buffers are never overwritten early
    ring = [det.input_buffer() for _ in range(depth + 2)] if in_q is not None else []

    def reader_loop():
        k = 0
        while not stop.is_set():
            item = src.read()
            if item is not None:
                t0 = time.perf_counter()
                x, tr = det.prepare(item[1], out=ring[k % len(ring)])
                prep_seconds[0] += time.perf_counter() - t0
                item, k = (item[0], item[1], x, tr), k + 1
            while not stop.is_set():
                try:
                    in_q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item is None:
                return

    def writer_loop():
        while True:
            item = out_q.get()
            if item is _STOP:
                return
            frame, dets, fps, lat = item
            t0 = time.perf_counter()
            draw(frame, dets, fps, lat)
            draw_seconds[0] += time.perf_counter() - t0
            try:
                writer.write(frame)
                written[0] += 1
            except cv2.error as exc:  # disk full and friends
                writer_error.append(first_line(exc))

    def hand_to_writer(item):
        """Returns the seconds spent waiting for room (not work: the writer is the slower stage)."""
        t0 = time.perf_counter()
        if src.live:
            while True:
                try:
                    out_q.put_nowait(item)
                    return 0.0
                except queue.Full:  # live: the oldest waiting frame goes
                    try:
                        out_q.get_nowait()
                    except queue.Empty:
                        pass
        out_q.put(item)
        return time.perf_counter() - t0

    wthread = threading.Thread(target=writer_loop, name="edgecnn-writer", daemon=True)
    wthread.start()
    rthread = None
    if in_q is not None:
        rthread = threading.Thread(target=reader_loop, name="edgecnn-reader", daemon=True)
        rthread.start()
    latencies, per_frame, frames, with_dets, total_dets = [], [], 0, 0, 0
    stage_seconds = invoke_seconds = 0.0
    names: Counter = Counter()
    quit_reason = "end of source"
    t_start = time.perf_counter()
    recent = deque(maxlen=30)
    total = max_frames or (capture_frame_count(src.cap) if not src.live else None)
    model = det.model
    try:
        with progress_bar("camera", total or None, progress) as tick:
            while True:
                item = src.read() if in_q is None else in_q.get()
                if item is None:
                    break
                t0 = time.perf_counter()
                if len(item) == 4:  # prepared by the reader thread
                    _, frame, x, tr = item
                    dets = det.infer(frame, x, tr)
                else:
                    frame = item[1]
                    dets = det.detect(frame)
                t_model = time.perf_counter()
                invoke_seconds += model.invoke_seconds
                if verify is not None and dets:
                    verify.label(frame, dets)
                    smoother.update(dets)
                    names.update(d.name for d in dets)
                latencies.append((t_model - t0) * 1e3)
                frames += 1
                recent.append(t_model)
                fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
                if dets:
                    with_dets += 1
                    total_dets += len(dets)
                if keep_per_frame:
                    per_frame.append([d.as_dict() for d in dets])
                shown = (frame.copy() if writer is not None else frame) if show else None  # copy before the writer draws
                waited = hand_to_writer((frame, dets, fps, latencies[-1])) if writer is not None else 0.0  # drawn, encoded there
                stage_seconds += time.perf_counter() - t0 - waited
                if show:
                    try:
                        cv2.imshow("edgecnn camera", draw(shown, dets, fps, latencies[-1]))
                    except cv2.error:  # an OpenCV without a GUI (opencv-python-headless)
                        show = False
                        (warn or note)("this OpenCV has no window support (opencv-python-headless): running headless")
                        continue
                    if (cv2.waitKey(1) & 0xFF) == ord("q"):
                        quit_reason = "q pressed"
                        break
                if progress:
                    tick(advance=1, status=f"{fps:.1f} FPS")
                if max_frames and frames >= max_frames:
                    quit_reason = "max frames"
                    break
    except KeyboardInterrupt as exc:
        quit_reason = "terminated" if type(exc).__name__ == "Terminated" else "interrupted"
    except BaseException:
        if writer is not None:
            writer.finish(keep=False)
            writer = None
        raise
    finally:
        stop.set()
        out_q.put(_STOP)
        wthread.join()
        if rthread is not None:
            rthread.join(timeout=5)
        src.close()
        if writer is not None:
            writer.finish(keep=not writer_error)
        if show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - t_start
    if writer_error:
        raise EdgecnnError(f"writing {output} failed: {writer_error[0]}")
    lat = summarize(latencies) if latencies else {}
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
        "seconds": round(elapsed, 3),
        "fps": round(frames / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_ms": {"p50": lat.get("p50"), "p90": lat.get("p90"), "mean": lat.get("mean")},
        # per frame, edgecnn's own work: preprocessing, detection decoding, labels, hand-offs and drawing
        # (everything but video decode, the model's invoke and video encode)
        "overhead_ms": round((stage_seconds - invoke_seconds + draw_seconds[0] + prep_seconds[0]) * 1e3 / frames, 4) if frames else None,
        "invoke_ms": round(invoke_seconds * 1e3 / frames, 4) if frames else None,
        "frames_with_detections": with_dets,
        "detections": total_dets,
        "ended_by": quit_reason,
        "output": str(output) if output else None,
        "frames_written": written[0] if output else 0,
    }
    if keep_per_frame:
        summary["per_frame"] = per_frame
    if verify is not None:
        summary["identities"] = dict(names)
    return summary
