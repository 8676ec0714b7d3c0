"""MediaPipe's SSD-anchor detectors (palm, pose, BlazeFace short and full range) decoded by edgecnn and
checked against MediaPipe 0.10.14's own answers on the same photos (tests/fixtures/mediapipe_reference.py
records them: MediaPipe cannot be installed beside TensorFlow). The model files come from MediaPipe's
wheel, unpacked by .ci/fetch-corpus."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import FACES, FIXTURES, make_portrait_clip

pytestmark = [pytest.mark.device]

REF = json.loads((FIXTURES / "mediapipe_detections.json").read_text())


def _model(subgraph: str) -> Path:
    path = Path(os.environ.get("EDGECNN_CORPUS", "/nonexistent")) / "mediapipe" / REF["models"][subgraph]
    if not path.is_file():
        pytest.skip(f"{path.name} is not here: run .ci/fetch-corpus")
    return path


def _as_mediapipe_samples(frame: np.ndarray, size: int) -> np.ndarray:
    """MediaPipe's own resampling (ImageToTensor on CPU): aspect kept, centred, bilinear warp, zero border,
    RGB. Feeding the decoder exactly this isolates it from the resize, which is edgecnn's own choice."""
    import cv2

    h, w = frame.shape[:2]
    s = size / max(w, h)
    m = np.float32([[s, 0, (size - w * s) / 2], [0, s, (size - h * s) / 2]])
    return cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[:, :, ::-1]


def _relative(det, w: int, h: int) -> dict:
    x1, y1, x2, y2 = det.box
    return {"score": det.score, "box": [x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h], "keypoints": [[x / w, y / h] for x, y in det.keypoints]}


def _iou(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0.0, min(ax2, bx2) - max(a[0], b[0])), max(0.0, min(ay2, by2) - max(a[1], b[1]))
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


@pytest.mark.parametrize("subgraph", list(REF["models"]))
def test_the_decoder_gives_mediapipes_own_answers(subgraph):
    from edgecnn.detectors import FaceDetector
    from edgecnn.faces import read_image

    det = FaceDetector(str(_model(subgraph)), min_score=0.5)
    for photo, answers in REF["answers"].items():
        frame = read_image(FACES / photo)
        h, w = frame.shape[:2]
        pixels, tr = det.prepare(frame)
        mine = [_relative(d, w, h) for d in det.infer(frame, _as_mediapipe_samples(frame, det.size).reshape(pixels.shape), tr)]
        ref = answers[subgraph]
        assert len(mine) == len(ref), (photo, [m["score"] for m in mine], [r["score"] for r in ref])
        for r in ref:
            m = max(mine, key=lambda m: _iou(m["box"], r["box"]))
            # MediaPipe blends overlapping boxes (weighted NMS) where edgecnn keeps the best one: close, not equal
            assert _iou(m["box"], r["box"]) > 0.9 and abs(m["score"] - r["score"]) < 0.02, (photo, m, r)
            assert len(m["keypoints"]) == len(r["keypoints"])
            assert np.abs(np.subtract(m["keypoints"], r["keypoints"])).max() < 0.02, (photo, m["keypoints"], r["keypoints"])


@pytest.mark.parametrize("subgraph", ["PalmDetectionCpu", "PoseDetectionCpu"])
def test_palm_and_pose_detectors_run_live_and_name_what_they_find(subgraph, tmp_path):
    """Through the public path (edgecnn's own resize) in the camera loop: what MediaPipe finds clearly
    (score 0.7 or more) is found, in the same place, named."""
    from edgecnn import camera

    import cv2

    photos = sorted(REF["answers"])
    clip = make_portrait_clip(tmp_path / "c.mp4", [FACES / p for p in photos], frames_each=1, size=(384, 480))
    s = camera.run(source=str(clip), detector=str(_model(subgraph)), headless=True, keep_per_frame=True, threads=2)
    assert s["frames"] == len(photos)
    name = "hand" if subgraph.startswith("Palm") else "person"
    for photo, found in zip(photos, s["per_frame"]):
        h, w = cv2.imread(str(FACES / photo)).shape[:2]  # 480 high: placed unscaled, centred across
        ox = (384 - w) // 2
        boxes = [[(d["box"][0] - ox) / w, d["box"][1] / h, (d["box"][2] - d["box"][0]) / w, (d["box"][3] - d["box"][1]) / h] for d in found]
        for r in REF["answers"][photo][subgraph]:
            if r["score"] >= 0.7:
                assert boxes and max(_iou(b, r["box"]) for b in boxes) > 0.6, (photo, found, r)
        assert all(d["name"] == name for d in found), found
