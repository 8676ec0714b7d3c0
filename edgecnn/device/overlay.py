"""What the camera loop draws on a frame (boxes, labels, scores, keypoints, the FPS line) and the
label smoothing of verified faces. Device-side: OpenCV."""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np


def _color(i: int):
    palette = [(80, 200, 80), (60, 140, 255), (255, 160, 60), (200, 80, 220), (60, 220, 220)]
    return palette[i % len(palette)]


STATUS_HEIGHT = 32  # pixels the status line's strip covers at the top of the frame (Hud.strip)


def draw(frame, detections, fps: float, latency_ms: float, extra: str = "", hud: Hud | None = None):
    """Boxes, labels, scores and keypoints of ``detections`` on ``frame``, and the status line through
    ``hud`` (a new one, rendered now, where none is given)."""
    import cv2

    for d in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in d.box)
        col = _color(d.label)
        if d.mask is not None:  # half the colour over the mask: the scene stays visible under it
            frame[d.mask] = (frame[d.mask] >> 1) + (np.asarray(col, np.uint8) >> 1)
        cv2.rectangle(frame, (x1, y1), (x2, y2), col, 2)
        text = f"{d.name or d.label} {d.score:.2f}" if d.name or d.label else f"{d.score:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        y = max(y1, STATUS_HEIGHT + th + 6)  # never under the status line (a classifier's box is the whole frame)
        cv2.rectangle(frame, (x1, y - th - 6), (x1 + tw + 4, y), col, -1)
        cv2.putText(frame, text, (x1 + 2, y - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for kx, ky in d.keypoints[:6]:
            cv2.circle(frame, (int(kx), int(ky)), 2, col, -1)
    (hud or Hud(every=0.0)).stamp(frame, fps, latency_ms, extra)
    return frame


class Hud:
    """The status line (FPS, the model's latency, ``extra``): white text on a black strip in the
    frame's top-left corner, rendered again once ``every`` seconds or ``frames`` frames have passed,
    whichever comes first (a file runs faster than real time, and its video is watched at its own
    rate), at once when ``extra`` changes or while there is no FPS figure yet, and copied onto the
    frames in between. A figure that changes on every frame cannot be read anyway, and rendering
    anti-aliased text on every frame was half of what drawing cost."""

    def __init__(self, every: float = 0.25, frames: int = 8):
        self.every, self.frames = every, frames
        self._key, self._at, self._left, self._patch = None, 0.0, 0, None

    @property
    def strip(self):
        """The status strip last drawn (height, width and pixels), or None before the first frame."""
        return self._patch

    def stamp(self, frame, fps: float, latency_ms: float, extra: str = ""):
        now = time.perf_counter()
        key = (extra, frame.shape[2:], frame.dtype)
        self._left -= 1
        if self._patch is None or key != self._key or self._left < 0 or now - self._at >= self.every:
            self._key, self._at = key, now
            self._left = self.frames - 1 if fps > 0 else 0  # no figure yet (the first frame): again next frame
            self._patch = self._render(f"{fps:5.1f} FPS  model {latency_ms:5.1f} ms {extra}".rstrip(), frame)
        p = self._patch
        h, w = min(p.shape[0], frame.shape[0]), min(p.shape[1], frame.shape[1])
        frame[:h, :w] = p[:h, :w]
        return frame

    @staticmethod
    def _render(text: str, frame):
        import cv2
        import numpy as np

        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
        patch = np.zeros((th + base + 12, tw + 16) + frame.shape[2:], frame.dtype)
        white = (255,) * (frame.shape[2] if frame.ndim == 3 else 1)
        cv2.putText(patch, text, (8, th + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.55, white, 1, cv2.LINE_AA)
        return patch


def has_display() -> bool:
    """A display that answers: a Wayland socket, or an X server reachable at ``$DISPLAY`` (an
    unreachable one would make Qt abort the process at the first window)."""
    import socket

    if os.environ.get("WAYLAND_DISPLAY"):
        run = os.environ.get("XDG_RUNTIME_DIR", "")
        return os.path.exists(os.path.join(run, os.environ["WAYLAND_DISPLAY"]))
    display = os.environ.get("DISPLAY", "")
    if not display:
        return False
    host, _, rest = display.rpartition(":")
    try:
        number = int(rest.split(".")[0])
    except ValueError:
        return False
    try:
        if host in ("", "unix", "localhost") and os.path.exists(f"/tmp/.X11-unix/X{number}"):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(f"/tmp/.X11-unix/X{number}")
            return True
        with socket.create_connection((host or "localhost", 6000 + number), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class LabelSmoother:
    """Majority vote of a face's identity over its last few frames (faces matched by IoU), so labels
    do not flicker."""

    window: int = 5
    tracks: list = field(default_factory=list)  # [(box, deque of names)]

    def update(self, detections):
        """Each detection takes the history of the old track it overlaps most, one detection per track
        (best pairs first): two people close together never share one history, and so one name."""
        from edgecnn.core.detection import iou

        pairs = sorted(((float(iou(d.box, [t[0]])[0]), i, j) for i, d in enumerate(detections) for j, t in enumerate(self.tracks)), reverse=True)
        taken, match = set(), {}
        for v, i, j in pairs:
            if v <= 0.3:
                break
            if i not in match and j not in taken:
                match[i] = j
                taken.add(j)
        new_tracks = []
        for i, d in enumerate(detections):
            hist = self.tracks[match[i]][1] if i in match else deque(maxlen=self.window)
            hist.append(d.name)
            d.name = Counter(hist).most_common(1)[0][0]
            new_tracks.append((d.box, hist))
        self.tracks = new_tracks
        return detections
