"""Clips made from real photographs that ship with the dependencies, with known face positions:
the README demo and the camera tests run on them on machines without a camera."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.core.errors import InputError

# scikit-image's astronaut (Eileen Collins, public domain): her face box in the 512x512 photo.
ASTRONAUT_FACE = (180.0, 82.0, 274.0, 176.0)
CROP = (137, 39, 180)  # x, y, side of the head-and-shoulders crop pasted into the clip


def _background(size):
    import cv2

    try:
        from sklearn.datasets import load_sample_images

        bg = load_sample_images().images[0][:, :, ::-1]  # china.jpg
    except Exception:  # noqa: BLE001
        from skimage import data

        bg = np.ascontiguousarray(data.coffee()[:, :, ::-1])
    return cv2.resize(np.ascontiguousarray(bg), size, interpolation=cv2.INTER_AREA)


def make_face_clip(path, frames: int = 48, size=(480, 320), fps: float = 12.0, extra_faces=()) -> list[tuple]:
    """Write a clip of the astronaut's portrait sliding across a real photo; returns the true face box
    per frame. ``extra_faces``: (image, name) pairs shown in the second half, for verification demos."""
    import cv2

    try:
        from skimage import data
    except ImportError:
        raise InputError("the demo clip needs scikit-image: pip install 'edgecnn[data]'") from None
    p = Path(path)
    codec = {".mp4": "mp4v", ".avi": "MJPG"}.get(p.suffix.lower())
    if codec is None:
        raise InputError("the demo clip must be .mp4 or .avi")
    W, H = size
    bg = _background(size)
    face_side = int(H * 0.75)
    cx0, cy0, side0 = CROP
    astro_full = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    astro = cv2.resize(astro_full[cy0 : cy0 + side0, cx0 : cx0 + side0], (face_side, face_side), interpolation=cv2.INTER_AREA)
    s = face_side / float(side0)
    writer = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*codec), fps, (W, H))
    if not writer.isOpened():
        raise InputError(f"cannot write {p}")
    truth = []
    extras = [cv2.resize(im, (face_side, int(face_side * im.shape[0] / im.shape[1])), interpolation=cv2.INTER_AREA) for im, _ in extra_faces]
    for i in range(frames):
        frame = bg.copy()
        t = i / max(1, frames - 1)
        x = int((W - face_side) * t)
        y = int((H - face_side) * 0.5)
        use_extra = extras and i >= frames // 2
        if use_extra:
            im = extras[(i - frames // 2) * len(extras) // max(1, frames - frames // 2)]
            h = min(im.shape[0], H)
            frame[0:h, x : x + face_side] = im[:h]
            truth.append(None)
        else:
            frame[y : y + face_side, x : x + face_side] = astro
            fx1, fy1, fx2, fy2 = (ASTRONAUT_FACE[0] - cx0, ASTRONAUT_FACE[1] - cy0, ASTRONAUT_FACE[2] - cx0, ASTRONAUT_FACE[3] - cy0)
            truth.append((x + fx1 * s, y + fy1 * s, x + fx2 * s, y + fy2 * s))
        writer.write(frame)
    writer.release()
    return truth
