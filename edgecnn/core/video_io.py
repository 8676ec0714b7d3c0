"""Video captures and writers (OpenCV), shared by calibration (frames from a video), the camera loop
and the demo: one place that knows how a source is opened and which codec an extension gets."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from pathlib import Path

from edgecnn.core._quiet import quiet_stderr
from edgecnn.core.errors import EdgecnnError, InputError, start_threads
from edgecnn.core.files import why_unwritable

CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


STREAM_TIMEOUT_MS = 10_000  # a stream that sends nothing for this long is dropped (then reconnected)


def is_live(source) -> bool:
    s = str(source)
    return s.isdigit() or "://" in s or s.startswith("/dev/video")


def open_capture(source, decode_threads: int | None = None):
    """``decode_threads``: FFmpeg's decoding threads for a file or stream (default: OpenCV's, one per
    core). A loop that decodes in its own thread beside inference wants 1: FFmpeg's frame threads cost
    30-50% more CPU per frame than they save in wall time, CPU the inference needs."""
    import cv2

    s = str(source)
    with quiet_stderr():  # FFmpeg / V4L2 print their own complaints about unreadable sources
        if s.isdigit():
            return cv2.VideoCapture(int(s))
        params = [cv2.CAP_PROP_N_THREADS, int(decode_threads)] if decode_threads and hasattr(cv2, "CAP_PROP_N_THREADS") else []
        if "://" in s:  # a server that accepts and never answers: FFmpeg waits 30 s per try by default
            params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
            return cv2.VideoCapture(s, cv2.CAP_FFMPEG, params)
        if params:
            cap = cv2.VideoCapture(s, cv2.CAP_FFMPEG, params)
            if cap.isOpened():
                return cap
            cap.release()  # not an FFmpeg source (an image sequence, GStreamer): OpenCV picks the backend
        return cv2.VideoCapture(s)


def default_source() -> int:
    """Camera 0 when one opens (``VideoCapture(0)`` raises nothing when there is none)."""
    cap = open_capture(0)
    ok = cap.isOpened()
    cap.release()
    if not ok:
        raise InputError("no camera found (camera 0 does not open); pass --source VIDEO_FILE or a stream URL")
    return 0


def capture_fps(cap, default: float = 25.0) -> float:
    """The frame rate a capture reports, or ``default`` where it reports none."""
    import cv2

    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if fps > 0 else default


def capture_frame_count(cap) -> int | None:
    """The number of frames a file capture reports (None where it reports none)."""
    import cv2

    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return n if n > 0 else None


def open_writer(path, fps: float, size: tuple[int, int], shown=None):
    """A VideoWriter whose codec follows the extension; failing to open is an error before the loop.
    ``shown``: the path the user gave, named in messages (``path`` may be a temporary name beside it)."""
    import cv2

    p = Path(path)
    shown = Path(shown) if shown is not None else p
    if shown.is_dir():
        raise InputError(f"--output {shown} is a folder; give a video file name (.mp4 or .avi)")
    codec = CODECS.get(p.suffix.lower())
    if codec is None:
        raise InputError(f"unsupported output {shown.suffix or shown.name!r}: use .mp4 (mp4v) or .avi (MJPG); OpenCV's wheels have no H.264 encoder")
    if not p.parent.exists():
        raise InputError(f"output folder does not exist: {p.parent}")
    if not os.access(p.parent, os.W_OK):
        raise InputError(f"cannot write to {p.parent} (read-only or permission denied); choose another --output")
    existed = p.exists()
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*codec), max(1.0, fps), size)
    if not w.isOpened():
        if not existed and p.exists():
            p.unlink()
        raise InputError(f"cannot write the video {shown}: {why_unwritable(p.parent) or f'OpenCV could not open codec {codec} for it'}")
    return w


class PartialVideo:
    """A video written under a temporary name beside ``output`` (``.NAME.PID.partialEXT``) and renamed
    when finished: the output path never holds a half-written video, whatever ends the loop."""

    def __init__(self, output, fps: float, size: tuple[int, int]):
        import os

        self.output = Path(output)
        self.partial = self.output.with_name(f".{self.output.stem}.{os.getpid()}.partial{self.output.suffix}")
        self.writer = open_writer(self.partial, fps, size, shown=self.output)
        self.frames = 0

    def write(self, frame) -> None:
        self.writer.write(frame)
        self.frames += 1

    def finish(self, keep: bool) -> None:
        """Close; ``keep`` renames the video into place once it plays back whole, otherwise the partial
        file goes. OpenCV's writer reports no write error: a full disk shows only as a file that does
        not open (an mp4 without its index) or holds fewer frames, which is refused here, not renamed."""
        import os

        self.writer.release()
        if keep and self.frames and not self._plays_back():
            self.partial.unlink(missing_ok=True)
            raise EdgecnnError(
                f"the video could not be written whole ({self.frames} frames sent; the disk is full or failed?): "
                f"nothing was kept at {self.output}; free some space or choose another --output"
            )
        if keep:
            os.chmod(self.partial, 0o644)
            os.replace(self.partial, self.output)
        else:
            self.partial.unlink(missing_ok=True)

    def _plays_back(self) -> bool:
        import cv2

        cap = cv2.VideoCapture(str(self.partial))
        try:
            if not cap.isOpened() or not cap.read()[0]:
                return False
            n = capture_frame_count(cap)
            if n is not None:
                return n >= self.frames
            st = os.statvfs(self.partial.parent)  # no frame count in the header (an AVI cut before its index)
            if st.f_bavail * st.f_frsize > 1 << 20:
                return True  # room left on the disk: no write ran out of it
            n = 1
            while cap.grab():  # the disk is (nearly) full: count what is really there, without decoding
                n += 1
            return n >= self.frames
        finally:
            cap.release()


class FrameSource:
    """Frames from a camera, stream or file; ``read()`` returns (index, frame) or None at the end.

    A live source (camera index or stream URL) is read by a capture thread that keeps only the newest
    frame (frames the consumer could not take are counted as dropped) and is reopened with backoff
    when it stops. A file is read in order, none dropped, unless ``realtime`` paces it like a camera.

    Frames handed back with :meth:`release` are decoded into again. A new array per frame costs the
    kernel's page faults on every read, because frames freed in other threads go back to the OS."""

    def __init__(self, source, live: bool | None = None, realtime: bool = False, reconnect: int = 3, backoff: float = 0.5, decode_threads: int | None = None):
        self.source = source
        self.decode_threads = decode_threads
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
            if p.stat().st_size == 0:
                raise InputError(f"video source {p} is empty (0 bytes), not a video")
        self.cap = open_capture(source, decode_threads)
        if not self.cap.isOpened():
            why = (
                f"no video from it within {STREAM_TIMEOUT_MS // 1000} s (is the URL right and the stream up?)"
                if "://" in str(source)
                else "OpenCV cannot read it (unsupported format or missing camera)"
            )
            raise InputError(f"cannot open video source {source}: {why}")
        self.fps = capture_fps(self.cap, default=30.0)
        self.dropped = 0
        self.reconnects = 0
        self.frames_read = 0
        self.decode_seconds = 0.0  # CPU time of the reads after the first (the reading thread's own clock)
        self._latest = None
        self._free = deque()  # released frames, read into again (append and pop are atomic)
        self._cond = threading.Condition()
        self._done = False
        self._wake = threading.Event()  # cuts a reconnect's back-off short when the source is closed
        self._thread = None
        self.longest_gap = 0.0  # seconds: the longest wait between two frames of a live source (a drop, a stall)
        self._t0 = None
        with quiet_stderr():
            first_ok, first = self.cap.read()
        if not first_ok or first is None:
            raise InputError(f"video source {source} opened but gave no frame (empty or unreadable file)")
        self._first = first
        self._shape = first.shape

    def start(self) -> None:
        """Start a live source's capture thread (the first :meth:`read` does it where nobody did). Not in
        the constructor: a signal between a constructor's return and its caller's ``try`` would leave a
        thread running that nobody holds to close. Here the thread is this object's before it starts."""
        if self.live and self._thread is None:
            self._thread = threading.Thread(target=self._capture_loop, name="edgecnn-capture", daemon=True)
            start_threads([self._thread])

    def release(self, frame) -> None:
        """Hand back a frame from :meth:`read` that nobody uses any more: it is decoded into again."""
        if frame is not None and frame.shape == self._shape:
            self._free.append(frame)

    def _read_frame(self):
        """``cap.read()`` into a released frame where there is one (a new size gets a new array)."""
        c0 = time.thread_time()
        try:
            buf = self._free.pop()
        except IndexError:
            buf = None
        try:
            return self.cap.read() if buf is None else self.cap.read(buf)
        finally:
            self.decode_seconds += time.thread_time() - c0

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
        index, last = 1, time.monotonic()
        while not self._done:
            ok, frame = self._read_frame()
            if not ok or frame is None:
                if not self._reconnect():
                    break
                continue
            now = time.monotonic()
            self.longest_gap, last = max(self.longest_gap, now - last), now
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1  # the consumer never saw the previous one: read into it again
                    self.release(self._latest[1])
                self._latest = (index, frame)
                self.frames_read += 1
                self._cond.notify_all()
            index += 1
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def _reconnect(self) -> bool:
        for attempt in range(self.reconnect_tries):
            if self._wake.wait(self.backoff * (2**attempt)) or self._done:
                return False
            self.cap.release()  # this thread's own capture: close() waits for this thread before it releases
            self.cap = open_capture(self.source, self.decode_threads)
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
            self.start()
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
                c0 = time.thread_time()
                grabbed = self.cap.grab()
                self.decode_seconds += time.thread_time() - c0
                if not grabbed:
                    return None
                self.frames_read += 1
                self.dropped += 1
            wait = self.frames_read / self.fps - (time.perf_counter() - self._t0)
            if wait > 0:
                time.sleep(wait)
        ok, frame = self._read_frame()
        if not ok or frame is None:
            return None
        self.frames_read += 1
        return self.frames_read - 1, frame

    def close(self):
        """Stop and let the capture go: the capture thread is joined first (every read and reopen it makes
        is bounded by the stream timeouts), so the capture is never released under a running read."""
        self._done = True
        self._wake.set()
        if self._thread is not None and self._thread.ident is not None:
            self._thread.join()
        self.cap.release()


def put_unless(q, item, stop: threading.Event) -> None:
    """``q.put(item)`` that gives up once ``stop`` is set: a stage never blocks for ever on a full queue."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def get_unless(q, stop: threading.Event):
    """``q.get()`` that gives up (None) once ``stop`` is set."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return None


class Handoff(queue.Queue):
    """A bounded queue between two stages of a pipeline. A producer blocked on it when full is woken
    once half of it has drained, not at every item taken (``queue.Queue``): in a pipeline paced by its
    slowest stage every producer waits on a full queue, and each wake-up is a context switch."""

    def get(self, block=True, timeout=None):
        with self.not_empty:
            end = None if not block or timeout is None else time.monotonic() + timeout
            while not self._qsize():
                left = None if end is None else end - time.monotonic()
                if not block or (left is not None and left <= 0):
                    raise queue.Empty
                self.not_empty.wait(left)
            item = self._get()
            if self._qsize() <= self.maxsize // 2:
                self.not_full.notify()
            return item
