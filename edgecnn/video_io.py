"""Video captures and writers (OpenCV), shared by calibration (frames from a video), the camera loop
and the demo: one place that knows how a source is opened and which codec an extension gets."""

from __future__ import annotations

from pathlib import Path

from edgecnn._quiet import quiet_stderr
from edgecnn.errors import InputError

CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


def is_live(source) -> bool:
    s = str(source)
    return s.isdigit() or "://" in s or s.startswith("/dev/video")


def open_capture(source):
    import cv2

    s = str(source)
    with quiet_stderr():  # FFmpeg / V4L2 print their own complaints about unreadable sources
        cap = cv2.VideoCapture(int(s)) if s.isdigit() else cv2.VideoCapture(s)
    return cap


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


def open_writer(path, fps: float, size: tuple[int, int]):
    """A VideoWriter whose codec follows the extension; failing to open is an error before the loop."""
    import cv2

    p = Path(path)
    codec = CODECS.get(p.suffix.lower())
    if codec is None:
        raise InputError(f"unsupported output {p.suffix or p.name!r}: use .mp4 (mp4v) or .avi (MJPG); OpenCV's wheels have no H.264 encoder")
    if not p.parent.exists():
        raise InputError(f"output folder does not exist: {p.parent}")
    existed = p.exists()
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*codec), max(1.0, fps), size)
    if not w.isOpened():
        if not existed and p.exists():
            p.unlink()
        raise InputError(f"cannot write video {p} with codec {codec}")
    return w


class PartialVideo:
    """A video written under a temporary name beside ``output`` (``.NAME.PID.partialEXT``) and renamed
    when finished: the output path never holds a half-written video, whatever ends the loop."""

    def __init__(self, output, fps: float, size: tuple[int, int]):
        import os

        self.output = Path(output)
        self.partial = self.output.with_name(f".{self.output.stem}.{os.getpid()}.partial{self.output.suffix}")
        self.writer = open_writer(self.partial, fps, size)

    def write(self, frame) -> None:
        self.writer.write(frame)

    def finish(self, keep: bool) -> None:
        """Close; ``keep`` renames the video into place, otherwise the partial file goes."""
        import os

        self.writer.release()
        if keep:
            os.chmod(self.partial, 0o644)
            os.replace(self.partial, self.output)
        else:
            self.partial.unlink(missing_ok=True)
