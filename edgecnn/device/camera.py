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
import time

from edgecnn.core._progress import progress as progress_bar
from edgecnn.core.errors import EdgecnnError, InputError, note
from edgecnn.core.video_io import capture_frame_count, default_source
from edgecnn.device.camera_loop import CameraLoop
from edgecnn.device.overlay import has_display


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
    from edgecnn.device.detectors import open_detector

    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be a positive integer, got {max_frames}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise InputError(f"--workers must be a positive integer, got {workers}")
    det = open_detector(detector, target=target, threads=threads, bundle=bundle, strict=strict, warn=warn, min_score=min_score)
    show = not headless and has_display()
    if not headless and not show and os.environ.get("DISPLAY"):
        (warn or note)(f"display {os.environ['DISPLAY']} does not answer: running headless (pass --headless to say so)")
    loop = CameraLoop(det, verify=verify, max_frames=max_frames, keep_per_frame=keep_per_frame, progress=progress, warn=warn)
    try:  # from the first resource taken: whatever ends the run, the finally lets every one go
        loop.open(
            default_source() if source is None else source,
            live=live,
            realtime=realtime,
            reconnect=reconnect,
            output=output,
            workers=workers,
            max_memory=max_memory,
            show=show,
        )
        total = max_frames or (capture_frame_count(loop.src.cap) if not loop.src.live else None)
        with progress_bar("camera", total or None, progress) as tick:
            loop.drive(tick)
    except KeyboardInterrupt as exc:
        if loop.src is None:  # stopped before there was a source: nothing ran, nothing to sum up
            raise
        loop.ended_by = "terminated" if type(exc).__name__ == "Terminated" else "interrupted"
    except BaseException:
        loop.abandoned = True  # the partial video goes, once the writer thread is done with it
        raise
    finally:
        held = loop.close()
    if held and loop.ended_by not in ("interrupted", "terminated"):
        loop.ended_by = "terminated" if held[0] == 15 else "interrupted"  # SIGTERM
    if loop.writer_error:
        raise EdgecnnError(f"writing {output} failed: {loop.writer_error[0]}")
    return summarize_run(loop, detector, output)


def summarize_run(loop: CameraLoop, detector, output) -> dict:
    """The summary of a run that ended (frames, dropped, fps, latency, detections, CPU, ...)."""
    from edgecnn.device.profiling import summarize

    src, det = loop.src, loop.det
    elapsed = time.perf_counter() - loop.t_start if loop.t_start is not None else 0.0
    frames, with_dets, total_dets = (sum(c[i] for c in loop.tallies) for i in range(3))
    latencies = [x for lat in loop.lat_by_worker for x in lat]
    ended_by = loop.ended_by
    if loop.max_frames and frames >= loop.max_frames and ended_by == "end of source":
        ended_by = "max frames"
    lat = summarize(latencies) if latencies else {}
    cpu = loop.cpu or [(0.0, 0.0, 0.0)]
    process, decoding, pools = (b - a for a, b in zip(cpu[0], cpu[-1]))  # the start and the end of the loop
    # CPU per frame: the invoke on the invoking threads' clocks and the interpreters' pools; overhead, the
    # process's CPU time less these, decoding (the reader's clock: one FFmpeg thread) and encoding
    invoke = sum(loop.invoke_cpu) + pools
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
        "overhead_ms": round((process - decoding - invoke - loop.encode_cpu) * 1e3 / frames, 4) if frames else None,
        "invoke_ms": round(invoke * 1e3 / frames, 4) if frames else None,
        "workers": len(loop.dets_by_worker),
        "decoded_by": "capture thread" if src.live else "workers in turn" if loop.in_turn else "reader thread",
        "threads": loop.dets_by_worker[0].model.threads,
        "frames_with_detections": with_dets,
        "detections": total_dets,
        "ended_by": ended_by,
        "output": str(output) if output else None,
        "frames_written": loop.written if output else 0,
        "memory": loop.memory,
    }
    if loop.keep_per_frame:
        summary["per_frame"] = [d for _, d in sorted((p for kept in loop.kept_by_worker for p in kept), key=lambda p: p[0])]
    if loop.verify is not None:
        summary["identities"] = dict(loop.names)
    return summary
