"""The camera loop's stages, as one object that owns every resource the loop takes.

``camera.run`` opens it inside the ``try`` whose ``finally`` closes it: each resource (the source, the
video, the threads) is an attribute the moment it exists, so a signal at any moment of the set-up,
the loop or the shutdown leaves nothing running or half-written. Three stages overlap: decoding (a
live source's capture thread; for a file a reader thread, or the workers in turn), inference with
detection decoding (the calling thread, or k worker threads whose results it takes back in frame
order, labels and draws), encoding (the writer thread). Queues are bounded: a file blocks (no frame
dropped), a live source drops the oldest frame. Device-side: numpy, OpenCV and LiteRT.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from pathlib import Path

from edgecnn.core.errors import first_line, hold_signals, note, shut_down, start_threads
from edgecnn.core.video_io import FrameSource, Handoff, PartialVideo, get_unless, put_unless
from edgecnn.device.overlay import Hud, LabelSmoother, draw

_STOP = object()


class CameraLoop:
    """One run of the camera loop. :meth:`open` takes the resources, :meth:`drive` runs the frames,
    :meth:`close` lets everything go whatever happened; the tallies stay for the summary."""

    def __init__(self, det, verify=None, max_frames=None, keep_per_frame=False, progress=False, warn=None):
        self.det, self.verify, self.max_frames = det, verify, max_frames
        self.keep_per_frame, self.progress, self.say = keep_per_frame, progress, warn or note
        self.dets_by_worker = [det]
        self.src = self.writer = None
        self.show = False
        self.threads: list = []
        self.stop = threading.Event()
        self.ended_by = "end of source"
        self.abandoned = False  # an error ended the loop: the rest is not encoded and the partial video goes
        self.writer_error: list = []
        self.written = 0
        self.names: Counter = Counter()
        self.smoother = LabelSmoother() if verify is not None else None
        self.cpu: list = []
        self.encode_cpu = 0.0
        self.in_turn = self.own = self.counted = False
        self.in_qs, self.res_qs, self.turns, self.ring, self.errors = [], [], [], [], []
        self.out_q = None
        self.taken = 0
        self.memory: dict = {}
        self.t_start = None
        self.invoke_cpu = [0.0]
        self.tallies, self.lat_by_worker, self.kept_by_worker = [[0, 0, 0]], [[]], [[]]

    # set-up
    def open(self, source, live=None, realtime=False, reconnect=3, output=None, workers=None, max_memory=None, show=False):
        # a file is decoded on one FFmpeg thread: more would take CPU the inference needs
        self.src = FrameSource(source, live=live, realtime=realtime, reconnect=reconnect, decode_threads=1)
        det = self.det
        k = workers or (2 if det.model.threads >= 2 else 1)
        if k > 1 and (self.src.live or not det.model.can_twin):
            if workers:  # asked for, and not possible: say why once
                why = "a live source runs one interpreter on all threads" if self.src.live else f"{det.model.delegate.active} is one device"
                self.say(f"--workers {workers} ignored: {why}")
            k = 1
        if k > 1:  # frame-parallel: worker w takes frames w, w + k, ...; results are taken back in order
            each = max(1, det.model.threads // k)
            self.dets_by_worker = [det.twin(each) for _ in range(k)]
            self.det = self.dets_by_worker[0]  # the first interpreter (all threads) is let go
        if output:  # finalised (end, q, Ctrl-C, SIGTERM) under a temporary name, then renamed
            with hold_signals() as hold:  # made and held here whole, or not at all
                self.writer = PartialVideo(output, self.src.fps, self.src.frame_size)
            hold.raise_held()
        self.show = show
        self._plan(max_memory)
        self._make_threads()

    def _plan(self, max_memory):
        w, h = self.src.frame_size
        k = len(self.dets_by_worker)
        self.memory = memory = plan_frames(w * h * 3, k, max_memory)
        if not memory["fits"]:
            self.say(
                f"--max-memory {memory['budget_mb']} MB is below the {memory['frames_in_flight_max']} frames of "
                f"{memory['frame_mb']} MB the loop needs at least: running with those"
            )
        depth = memory["queue_depth"]
        # Who decodes a file with several interpreters: with no encoder competing for the cores, each worker
        # decodes its own frames, taking turns (a thread and a hand-off fewer a frame); with one, a reader
        # thread decoding ahead keeps the workers fed when the encoder takes their core (benchmarks/camera.py).
        self.in_turn = k > 1 and self.writer is None and not self.src.live
        # And where nothing needs the frames in order (no video, no window, no labels), each worker keeps
        # the tally of its own frames: no result handed to this thread per frame, which only waits.
        self.own = self.in_turn and not self.show and self.verify is None
        self.counted = self.own and not self.keep_per_frame  # only the number of detections is asked for: no objects
        self.in_qs = [] if self.src.live or self.in_turn else [Handoff(maxsize=depth) for _ in range(k)]
        self.res_qs = [Handoff(maxsize=depth) for _ in range(k)] if k > 1 and not self.own else []
        self.turns = [threading.Lock() for _ in range(k)] if self.in_turn else []  # worker w decodes while it holds turns[w]
        for lock in self.turns[1:]:
            lock.acquire()
        self.out_q = Handoff(maxsize=memory["writer_depth"])
        # CPU seconds of the invoke per interpreter, on each thread's own clock
        self.invoke_cpu = [0.0] * k
        # per worker (the ordered loop's in the first): [frames, with detections, detections], latencies, (index, detections)
        self.tallies, self.lat_by_worker, self.kept_by_worker = [[0, 0, 0] for _ in range(k)], [[] for _ in range(k)], [[] for _ in range(k)]
        # A reader thread also resizes a file's frames (still in its cache) into a ring of uint8 pixel buffers
        # that the workers normalise into their input tensors, handed round-robin: it is at most (depth + 1) * k
        # frames ahead of a frame in use (it blocks on that worker's full queue): (depth + 2) * k are enough.
        self.ring = [self.det.input_buffer() for _ in range((depth + 2) * len(self.in_qs))]

    def _make_threads(self):
        t = []
        if self.writer is not None:
            t.append(threading.Thread(target=self._writer_loop, name="edgecnn-writer", daemon=True))
        if self.in_qs:
            t.append(threading.Thread(target=self._reader_loop, name="edgecnn-reader", daemon=True))
        if self.res_qs or self.own:
            t += [threading.Thread(target=self._worker_loop, args=(w,), name=f"edgecnn-worker-{w}", daemon=True) for w in range(len(self.dets_by_worker))]
        self.threads = t

    def clocks(self):
        """CPU seconds: the process, decoding (the reading thread's clock), the interpreters' own pools."""
        return time.process_time(), self.src.decode_seconds, sum(d.model.pool_cpu_seconds() for d in self.dets_by_worker)

    # the stages
    def _reader_loop(self):
        n, item = 0, None
        try:
            while not self.stop.is_set():
                item = self.src.read()
                if item is None:
                    break
                if self.ring:
                    x, tr = self.det.prepare(item[1], out=self.ring[n % len(self.ring)])
                    item = (item[0], item[1], x, tr)
                put_unless(self.in_qs[n % len(self.in_qs)], item, self.stop)
                n += 1
        except Exception as exc:  # noqa: BLE001 - a failed read or prepare ends the loop with its error, not a hang
            item = exc
        for q in self.in_qs:  # the end (None) or the error, to every worker
            put_unless(q, item, self.stop)

    def infer(self, w, item):
        """(frame, detections (their number where only that is kept), latency ms): worker w's model and
        its decoding, timed."""
        d = self.dets_by_worker[w]
        if len(item) == 4:  # its pixels prepared by the reader thread
            _, frame, x, tr = item
        else:  # prepared here (a worker, or a live source), straight into the input tensor
            frame, x = item[1], None
            tr = d.model.load(frame)
        t0 = time.perf_counter()  # the latency is the model's and its decoding's, wherever the frame was prepared
        dets = d.count(frame, x, tr) if self.counted else d.infer(frame, x, tr)
        self.invoke_cpu[w] += d.model.invoke_cpu_seconds
        return frame, dets, (time.perf_counter() - t0) * 1e3

    def _take(self, w):
        """Worker w's next frame: from its queue (the reader thread's), or decoded here in its turn."""
        if not self.in_turn:
            return get_unless(self.in_qs[w], self.stop)
        mine, after = self.turns[w], self.turns[(w + 1) % len(self.turns)]
        while not mine.acquire(timeout=0.1):
            if self.stop.is_set():
                return None
        try:
            if self.stop.is_set() or (self.own and self.max_frames and self.taken >= self.max_frames):
                return None
            self.taken += 1  # frames handed out (a realtime source's skipped frames are not), under the turn
            return self.src.read()
        except Exception as exc:  # noqa: BLE001 - a failed read ends the loop with its error, in frame order
            if self.own:
                self._failed(self.src.frames_read, exc)
            return exc
        finally:
            after.release()

    def _failed(self, index, exc):
        self.errors.append((index, exc))
        self.stop.set()

    def _worker_loop(self, w):
        q_out = None if self.own else self.res_qs[w]
        while True:
            item = self._take(w)
            if item is None or isinstance(item, Exception):
                if not self.own:
                    put_unless(q_out, item, self.stop)
                return
            try:
                result = self.infer(w, item)
                if not self.own:
                    put_unless(q_out, result, self.stop)
                    continue
                self.tally(w, item[0], *result)
            except Exception as exc:  # noqa: BLE001 - raised by the calling thread, in frame order; never a worker dying in silence
                if self.own:
                    self._failed(item[0], exc)
                else:
                    put_unless(q_out, exc, self.stop)
                return

    def tally(self, w, index, frame, dets, latency):
        """Count a frame's detections into worker w's tallies and hand the frame back (None: kept)."""
        t = self.tallies[w]
        t[0] += 1
        self.lat_by_worker[w].append(latency)
        if dets:
            t[1] += 1
            t[2] += dets if self.counted else len(dets)
        if self.keep_per_frame:
            self.kept_by_worker[w].append((index, [d.as_dict() for d in dets]))
        self.src.release(frame)

    def _next_result(self, n):
        if self.res_qs:
            return get_unless(self.res_qs[n % len(self.res_qs)], self.stop)
        item = self.src.read() if self.src.live else get_unless(self.in_qs[0], self.stop)
        return item if item is None or isinstance(item, Exception) else self.infer(0, item)

    def _writer_loop(self):
        while True:
            frame = self.out_q.get()
            if frame is _STOP:
                return
            if self.abandoned:  # an error ended the loop: the rest is not encoded, only let go
                continue
            try:
                c0 = time.thread_time()
                self.writer.write(frame)
                self.encode_cpu += time.thread_time() - c0
                self.written += 1
            except Exception as exc:  # noqa: BLE001 - a full disk and friends: said at the end; this thread drains on
                self.writer_error.append(first_line(exc))
                self.abandoned = True
            self.src.release(frame)

    def _hand_to_writer(self, item):
        while self.src.live:
            try:
                self.out_q.put_nowait(item)
                return
            except queue.Full:  # live: the oldest waiting frame goes
                try:
                    self.src.release(self.out_q.get_nowait())
                except queue.Empty:
                    pass
        self.out_q.put(item)

    # the run
    def drive(self, tick):
        """Start the stages and run the frames to the end (``tick``: the progress bar's)."""
        self.t_start, self.cpu = time.perf_counter(), [self.clocks()]
        self.src.start()
        start_threads(self.threads)
        if self.own:
            return self._wait_for_workers(tick)
        recent, hud = deque(maxlen=30), Hud()  # the FPS over the last 30 frames; the status line, rendered every few frames
        frames = 0
        while True:  # the ordered loop: results taken back frame by frame
            result = self._next_result(frames)
            if result is None:
                return
            if isinstance(result, Exception):
                raise result
            t0 = time.perf_counter()
            frame, dets, latency = result
            if self.verify is not None and dets:
                self.verify.label(frame, dets)
                self.smoother.update(dets)
                self.names.update(d.name for d in dets)
            self.tally(0, frames, None, dets, latency)  # the frame is drawn, shown and written below
            frames += 1
            recent.append(t0)
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
            if self.writer is not None or self.show:
                # drawn here: OpenCV sets up its text rendering once per thread, so a long-lived thread draws
                draw(frame, dets, fps, latency, hud=hud)
            quit_pressed = self._show(frame)  # shown before the frame goes to the writer, which hands it back to be read into
            if self.writer is not None:
                self._hand_to_writer(frame)  # encoded there, then released
            else:
                self.src.release(frame)
            if quit_pressed:
                self.ended_by = "q pressed"
                return
            if self.progress:
                tick(advance=1, status=f"{fps:.1f} FPS")
            if self.max_frames and frames >= self.max_frames:
                self.ended_by = "max frames"
                return

    def _wait_for_workers(self, tick):
        """The workers tally their own frames: wait for them (Ctrl-C still reaches this thread)."""
        done = 0
        for t in self.threads:
            while t.is_alive():
                t.join(0.1)
                if self.progress:
                    n = sum(c[0] for c in self.tallies)
                    tick(advance=n - done, status=f"{n / (time.perf_counter() - self.t_start):.1f} FPS")
                    done = n
        if self.errors:  # the first frame's error, as the ordered loop raises it
            raise min(self.errors, key=lambda e: e[0])[1]

    def _show(self, frame) -> bool:
        """Show the frame where a window is open; True when q was pressed."""
        if not self.show:
            return False
        import cv2

        try:
            cv2.imshow("edgecnn camera", frame)
            return (cv2.waitKey(1) & 0xFF) == ord("q")
        except cv2.error:  # an OpenCV without a GUI (opencv-python-headless)
            self.show = False
            self.say("this OpenCV has no window support (opencv-python-headless): running headless")
            return False

    def close(self) -> list:
        """Let everything go, to the end whatever signals come; returns the signals held meanwhile. Every
        wait in the threads is bounded and checks stop, so no join is timed; the threads end before the
        capture and the writer are released (released mid-read or mid-write, they crash)."""
        started = [t for t in self.threads if t.ident is not None]
        steps = [self.stop.set]
        if self.writer is not None and started:
            steps.append(lambda: self.out_q.put(_STOP))  # the writer thread is the first started
        steps += [t.join for t in started]
        if self.cpu:
            steps.append(lambda: self.cpu.append(self.clocks()))
        if self.src is not None:
            steps.append(self.src.close)
        if self.writer is not None:
            steps.append(lambda: self.writer.finish(keep=not self.writer_error and not self.abandoned and self.written > 0))
        if self.show:
            import cv2

            steps.append(cv2.destroyAllWindows)
        return shut_down(steps)


def available_memory() -> int | None:
    """Bytes the kernel says a new allocation can have without swapping (MemAvailable), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


MEMORY_SHARE = 0.25  # of the memory available at start: the default budget for the frames in flight


def plan_frames(frame_bytes: int, workers: int, max_memory: int | None) -> dict:
    """The camera loop's queue depths under a memory budget for its frames in flight (``max_memory``
    bytes; None: a share of the memory available). The deepest queues that fit, or the shallowest that
    run at all. The bound counts every place a frame can wait: the workers' input and result queues, the
    writer's queue, one in each stage's hands and one held by each producer blocked on a full queue."""
    if max_memory is None:
        avail = available_memory()
        max_memory = int(avail * MEMORY_SHARE) if avail else None

    def bound(depth, out):
        return 2 * workers * depth + out + 2 * workers + 5

    fits = [(d, o) for d in (4, 3, 2, 1) for o in (8, 6, 4, 2, 1) if max_memory is None or bound(d, o) * frame_bytes <= max_memory]
    depth, out = max(fits, key=lambda p: (bound(*p), p)) if fits else (1, 1)
    return {
        "budget_mb": round(max_memory / 2**20, 1) if max_memory else None,
        "frame_mb": round(frame_bytes / 2**20, 2),
        "queue_depth": depth,
        "writer_depth": out,
        "frames_in_flight_max": bound(depth, out),
        "fits": bool(fits),
    }
