"""Detection geometry on the device side (numpy + OpenCV only): YOLO grid decoding, IoU, NMS.

Boxes are (x1, y1, x2, y2) in pixels or in [0, 1] image fractions, as stated by each function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Anchor (width, height) as fractions of the image side.
DEFAULT_ANCHORS = ((0.12, 0.12), (0.3, 0.3), (0.6, 0.6))


@dataclass
class Detection:
    """One detection: a box (x1, y1, x2, y2: [0, 1] fractions from decoders, frame pixels once mapped
    back), its score and label, and for faces the keypoints and, once verified, the identity."""

    box: tuple
    score: float
    label: int = 0
    keypoints: list = field(default_factory=list)  # [(x, y)], same units as the box
    name: str | None = None  # label text, or the identity once verified
    mask: np.ndarray | None = None  # a segmenter's: bool, the frame's size (never in as_dict: its share is)

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    def as_dict(self) -> dict:
        d = {"box": [round(float(v), 4) for v in self.box], "score": round(float(self.score), 4), "label": int(self.label)}
        if self.keypoints:
            d["keypoints"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints]
        if self.name is not None:
            d["name"] = self.name
        if self.mask is not None:
            d["mask_fraction"] = round(float(np.count_nonzero(self.mask)) / max(1, self.mask.size), 4)
        return d


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def iou(box, boxes) -> np.ndarray:
    """Intersection over union of ``box`` (4,) with each of ``boxes`` (N, 4), corners format."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    b = np.asarray(box, np.float64)
    ix1 = np.maximum(b[0], boxes[:, 0])
    iy1 = np.maximum(b[1], boxes[:, 1])
    ix2 = np.minimum(b[2], boxes[:, 2])
    iy2 = np.minimum(b[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = lambda t: np.clip(t[..., 2] - t[..., 0], 0, None) * np.clip(t[..., 3] - t[..., 1], 0, None)  # noqa: E731
    union = area(b) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes, scores, iou_threshold: float = 0.45, score_threshold: float = 0.0, top_k: int = 0) -> np.ndarray:
    """Indices kept by non-max suppression (OpenCV's ``cv2.dnn.NMSBoxes``), best score first."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return nms_xywh(np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]), scores, iou_threshold, score_threshold, top_k)


def nms_xywh(xywh, scores, iou_threshold: float = 0.45, score_threshold: float = 0.0, top_k: int = 0) -> np.ndarray:
    """:func:`nms` for boxes already as (x, y, width, height), OpenCV's own form: no conversion."""
    import cv2

    xywh = np.asarray(xywh, np.float64).reshape(-1, 4)
    if len(xywh) == 0:
        return np.zeros((0,), np.int64)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), np.asarray(scores, np.float64).tolist(), score_threshold, iou_threshold, top_k=top_k)
    return np.asarray(keep, np.int64).reshape(-1)


def nms_clusters(xywh, scores, iou_threshold: float) -> list[np.ndarray]:
    """Greedy NMS that also says what each kept box suppressed: one index array per kept box, the kept
    one first, best score first. MediaPipe's weighted NMS blends each cluster (see :func:`blend`)."""
    xywh = np.asarray(xywh, np.float64).reshape(-1, 4)
    corners = np.column_stack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])
    remaining = np.argsort(-np.asarray(scores), kind="stable")
    clusters = []
    while remaining.size:
        close = iou(corners[remaining[0]], corners[remaining]) > iou_threshold
        close[0] = True
        clusters.append(remaining[close])
        remaining = remaining[~close]
    return clusters


def blend(values: np.ndarray, scores: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """The score-weighted mean of ``values`` over a cluster: steadier boxes and keypoints than the best
    one alone (MediaPipe's WEIGHTED suppression for its SSD detectors)."""
    w = scores[cluster].astype(np.float64)
    return (values[cluster] * w.reshape(-1, *[1] * (values.ndim - 1))).sum(0) / w.sum()


def decode_yolo(output, anchors=DEFAULT_ANCHORS, score_threshold: float = 0.5, iou_threshold: float = 0.45):
    """Decode one YOLO grid output (S, S, B, 5 + C) into :class:`Detection` boxes in [0, 1] fractions.

    bx = (col + sigmoid(tx)) / S, by = (row + sigmoid(ty)) / S, bw = anchor_w * exp(tw),
    bh = anchor_h * exp(th); score = sigmoid(objectness) * softmax(classes)[label]. Then NMS.
    """
    out = np.asarray(output, np.float32)
    if out.ndim == 5 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 4:
        raise ValueError(f"expected a (S, S, B, 5 + C) grid, got shape {out.shape}")
    s_h, s_w, n_anchors, _ = out.shape
    anchors = np.asarray(anchors, np.float32).reshape(-1, 2)
    if len(anchors) != n_anchors:
        raise ValueError(f"the grid has {n_anchors} anchors per cell but {len(anchors)} anchors were given")
    cols = np.arange(s_w, dtype=np.float32)[None, :, None]
    rows = np.arange(s_h, dtype=np.float32)[:, None, None]
    bx = (cols + _sigmoid(out[..., 0])) / s_w
    by = (rows + _sigmoid(out[..., 1])) / s_h
    bw = anchors[:, 0] * np.exp(np.clip(out[..., 2], -8, 8))
    bh = anchors[:, 1] * np.exp(np.clip(out[..., 3], -8, 8))
    obj = _sigmoid(out[..., 4])
    if out.shape[-1] > 5:
        logits = out[..., 5:] - out[..., 5:].max(axis=-1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=-1, keepdims=True)
        labels = probs.argmax(-1)
        scores = obj * probs.max(-1)
    else:
        labels = np.zeros_like(obj, dtype=np.int64)
        scores = obj
    mask = scores >= score_threshold
    boxes = np.stack([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2], axis=-1)[mask]
    boxes = np.clip(boxes, 0.0, 1.0)
    scores, labels = scores[mask], labels[mask]
    keep = nms(boxes, scores, iou_threshold)
    return [Detection(tuple(boxes[i]), float(scores[i]), int(labels[i])) for i in keep]


def picodet_layout(shapes: list, input_hw: tuple[int, int]) -> list[tuple[int, int, int]] | None:
    """For an anchor-free GFL head (PicoDet, as PaddleDetection exports it): per stride, (stride, score
    output, box output), from the outputs' shapes: (1, N, classes) and (1, N, 4 x bins) per stride, N the
    cells of the stride's grid over the input, in any order. None where the outputs are not such a head."""
    import math

    h, w = input_hw
    if len(shapes) < 2 or len(shapes) % 2 or any(len(s) != 3 for s in shapes):
        return None
    by_cells: dict = {}
    for i, s in enumerate(shapes):
        by_cells.setdefault(int(s[1]), []).append(i)
    out = []
    for cells, pair in by_cells.items():
        stride = next((s for s in (8, 16, 32, 64, 128) if math.ceil(h / s) * math.ceil(w / s) == cells), None)
        if stride is None or len(pair) != 2:
            return None
        boxy = [i for i in pair if shapes[i][2] % 4 == 0 and shapes[i][2] >= 8]
        if not boxy:
            return None
        box = boxy[-1]  # both could be: the export puts the box distributions after the scores
        out.append((stride, next(i for i in pair if i != box), box))
    return sorted(out)


def decode_picodet(
    scores: list,
    dists: list,
    strides: list,
    input_hw: tuple[int, int],
    min_score: float = 0.5,
    iou_threshold: float = 0.5,
    per_level: int = 1000,
    candidates: int = 200,
    keep: int = 100,
) -> list[Detection]:
    """PicoDet's GFL head: per stride, each cell's class scores (sigmoid already applied) and a discrete
    distribution over distances to the box's four sides (softmax, its expectation, times the stride),
    from the cell's centre; the ``per_level`` best cells of each stride, then per class the ``candidates``
    best above ``min_score`` through hard NMS, at most ``keep`` each. Boxes in [0, 1] of the input."""
    h, w = input_hw
    boxes, confs = [], []
    for stride, score, dist in zip(strides, scores, dists):
        score = np.asarray(score, np.float32).reshape(-1, np.shape(score)[-1])
        d = np.asarray(dist, np.float32).reshape(score.shape[0], 4, -1)
        d = np.exp(d - d.max(-1, keepdims=True))
        d = (d / d.sum(-1, keepdims=True)) @ np.arange(d.shape[-1], dtype=np.float32) * stride  # (N, 4): left, top, right, bottom
        gw = int(np.ceil(w / stride))
        idx = np.arange(score.shape[0])
        cx, cy = (idx % gw + 0.5) * stride, (idx // gw + 0.5) * stride
        top = np.argsort(-score.max(1), kind="stable")[:per_level]
        boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1)[top])
        confs.append(score[top])
    if not boxes:
        return []
    b, c = np.concatenate(boxes) / np.float32([w, h, w, h]), np.concatenate(confs)
    out = []
    for k in range(c.shape[1]):
        sel = np.flatnonzero(c[:, k] > min_score)
        sel = sel[np.argsort(-c[sel, k], kind="stable")][:candidates]
        for i in sel[nms(b[sel], c[sel, k], iou_threshold, top_k=keep)] if len(sel) else []:
            out.append(Detection(tuple(float(v) for v in np.clip(b[i], 0.0, 1.0)), float(c[i, k]), k))  # clipped once kept
    return out


def yolov8_layout(shape, input_hw: tuple[int, int]) -> str | None:
    """For an Ultralytics YOLOv5u/v8/v11-style single output (no NMS in the graph): ``"rows"`` where it
    is (1, 4 + classes, cells) as Ultralytics exports it, ``"columns"`` where transposed (1, cells, 4 +
    classes); cells the grid cells of strides 8, 16 and 32 over the input. None otherwise."""
    import math

    h, w = input_hw
    cells = sum(math.ceil(h / s) * math.ceil(w / s) for s in (8, 16, 32))
    if len(shape) != 3 or shape[0] != 1:
        return None
    if shape[2] == cells and shape[1] > 4:
        return "rows"
    if shape[1] == cells and shape[2] > 4:
        return "columns"
    return None


def decode_yolov8(
    out: np.ndarray, layout: str, input_hw: tuple[int, int], min_score: float = 0.25, iou_threshold: float = 0.45, agnostic: bool = False, keep: int = 300
) -> list[Detection]:
    """An Ultralytics detection head's raw output: per cell the box (centre x, y, width, height in input
    pixels) and each class's score (no objectness); a cell's class is its best score; NMS per class
    (``agnostic``: all classes together). Boxes in [0, 1] of the input."""
    h, w = input_hw
    p = np.asarray(out, np.float32).reshape(out.shape[-2:])
    p = p.T if layout == "rows" else p  # (cells, 4 + classes)
    scores = p[:, 4:]
    cls = scores.argmax(1)
    best = scores[np.arange(len(p)), cls]
    sel = np.flatnonzero(best > min_score)
    if not len(sel):
        return []
    cx, cy, bw, bh = (p[sel, k] for k in range(4))
    boxes = np.stack([(cx - bw / 2) / w, (cy - bh / 2) / h, (cx + bw / 2) / w, (cy + bh / 2) / h], 1)
    out_dets = []
    for k in [None] if agnostic else np.unique(cls[sel]):
        idx = np.arange(len(sel)) if k is None else np.flatnonzero(cls[sel] == k)
        for i in idx[nms(boxes[idx], best[sel][idx], iou_threshold, top_k=keep)]:
            out_dets.append(Detection(tuple(float(v) for v in np.clip(boxes[i], 0.0, 1.0)), float(best[sel][i]), int(cls[sel][i])))
    return sorted(out_dets, key=lambda d: -d.score)[:keep]
