"""The YOLO grid detector trained on shapes composited onto real photographs (boxes known), with
mAP@0.5 measured on held-out scenes."""

from __future__ import annotations

import numpy as np

from edgecnn.calibration.datasets import sample_photos
from edgecnn.core.detection import decode_yolo, iou
from edgecnn.core.metrics import mean_average_precision
from edgecnn.core.preprocess import PreprocessSpec
from edgecnn.models._tf import keras
from edgecnn.models.registry import build

SHAPES = ("circle", "square", "triangle")


def make_shapes_dataset(n: int, size: int = 96, seed: int = 0, max_objects: int = 3):
    """Scenes of shapes composited onto crops of real photographs, with their boxes known.

    Returns (images BGR uint8, boxes) where boxes[i] is a list of (class, x1, y1, x2, y2) in [0, 1].
    """
    import cv2

    rng = np.random.default_rng(seed)
    photos = sample_photos()
    images, boxes = [], []
    for _ in range(n):
        ph = photos[rng.integers(len(photos))]
        h, w = ph.shape[:2]
        side = int(min(h, w) * rng.uniform(0.3, 0.9))
        y0, x0 = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        img = cv2.resize(ph[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA).copy()
        objs = []
        for _ in range(rng.integers(1, max_objects + 1)):
            for _try in range(10):
                s = rng.uniform(0.2, 0.42)
                cx, cy = rng.uniform(s / 2, 1 - s / 2), rng.uniform(s / 2, 1 - s / 2)
                box = (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2)
                if not objs or max(iou(box, [o[1:] for o in objs])) < 0.1:
                    break
            else:
                continue
            cls = int(rng.integers(len(SHAPES)))
            region = img[int(box[1] * size) : int(box[3] * size), int(box[0] * size) : int(box[2] * size)]
            mean = region.reshape(-1, 3).mean(0) if region.size else np.array([128, 128, 128])
            color = tuple(int(v) for v in np.where(mean > 127, rng.integers(0, 60, 3), rng.integers(195, 256, 3)))
            x1, y1, x2, y2 = (int(round(v * size)) for v in box)
            if cls == 0:
                cv2.circle(img, ((x1 + x2) // 2, (y1 + y2) // 2), (x2 - x1) // 2, color, -1, cv2.LINE_AA)
            elif cls == 1:
                cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), color, -1)
            else:
                pts = np.array([[(x1 + x2) // 2, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]], np.int32)
                cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
            objs.append((cls, *box))
        images.append(img)
        boxes.append(objs)
    return images, boxes


def yolo_targets(boxes, grid: int, anchors, num_classes: int) -> np.ndarray:
    """(S, S, B, 5 + C) training target: (tx, ty) offsets in the cell, log(w / anchor), objectness, one-hot class."""
    anchors = np.asarray(anchors, np.float32)
    t = np.zeros((grid, grid, len(anchors), 5 + num_classes), np.float32)
    for cls, x1, y1, x2, y2 in boxes:
        w, h = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        col, row = min(grid - 1, int(cx * grid)), min(grid - 1, int(cy * grid))
        inter = np.minimum(anchors[:, 0], w) * np.minimum(anchors[:, 1], h)
        a = int(np.argmax(inter / (anchors[:, 0] * anchors[:, 1] + w * h - inter)))
        t[row, col, a, :5] = (cx * grid - col, cy * grid - row, np.log(w / anchors[a, 0]), np.log(h / anchors[a, 1]), 1.0)
        t[row, col, a, 5 + int(cls)] = 1.0
    return t


def yolo_loss(num_classes: int, coord: float = 5.0, noobj: float = 0.5):
    """YOLO's sum-squared box terms, objectness cross-entropy (no-object cells weighted 0.5), class cross-entropy."""

    def loss(y_true, y_pred):
        ops = keras.ops
        obj = y_true[..., 4]
        xy = ops.sigmoid(y_pred[..., 0:2])
        l_xy = ops.sum(ops.square(xy - y_true[..., 0:2]), axis=-1)
        l_wh = ops.sum(ops.square(y_pred[..., 2:4] - y_true[..., 2:4]), axis=-1)
        p_obj = ops.clip(ops.sigmoid(y_pred[..., 4]), 1e-6, 1 - 1e-6)
        l_obj = -(obj * ops.log(p_obj) + noobj * (1 - obj) * ops.log(1 - p_obj))
        logp = ops.log_softmax(y_pred[..., 5:], axis=-1)
        l_cls = -ops.sum(y_true[..., 5:] * logp, axis=-1)
        per_cell = coord * obj * (l_xy + l_wh) + l_obj + obj * l_cls
        return ops.sum(per_cell) / ops.cast(ops.shape(y_true)[0], "float32")

    return loss


def train_yolo(
    n_train: int = 1600, n_val: int = 300, epochs: int = 30, input_size: int = 96, anchors=None, seed: int = 0, batch_size: int = 32, progress: bool = False
):
    """Train the ``yolo`` builder on generated scenes; returns (model, report with float mAP@0.5, val data)."""

    keras.utils.set_random_seed(seed)
    anchors = [tuple(a) for a in (anchors or ((0.22, 0.22), (0.32, 0.32), (0.42, 0.42)))]
    spec = PreprocessSpec.for_input(input_size, input_size, 3, "unit", labels=list(SHAPES))
    model = build("yolo", input_shape=(input_size, input_size, 3), num_classes=len(SHAPES), anchors=anchors)
    grid = model.output_shape[1]
    imgs, boxes = make_shapes_dataset(n_train, input_size, seed)
    vimgs, vboxes = make_shapes_dataset(n_val, input_size, seed + 1000)
    x = spec.apply_batch(imgs)
    y = np.stack([yolo_targets(b, grid, anchors, len(SHAPES)) for b in boxes])
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=yolo_loss(len(SHAPES)))
    sched = keras.callbacks.LearningRateScheduler(lambda e, lr: 2e-3 if e < epochs * 0.6 else (5e-4 if e < epochs * 0.85 else 1e-4))
    hist = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=2 if progress else 0, callbacks=[sched], shuffle=True)
    raw = model.predict(spec.apply_batch(vimgs), verbose=0)
    dets = [decode_yolo(r, anchors, score_threshold=0.05, iou_threshold=0.45) for r in raw]
    m = mean_average_precision(dets, vboxes, len(SHAPES))
    report = {
        "input_shape": [input_size, input_size, 3],
        "grid": grid,
        "anchors": [list(a) for a in anchors],
        "labels": list(SHAPES),
        "train_images": n_train,
        "val_images": n_val,
        "epochs": epochs,
        "final_loss": round(float(hist.history["loss"][-1]), 4),
        "map50": round(m["map"], 4),
        "ap50_per_class": {SHAPES[c]: round(v, 4) for c, v in m["per_class"].items()},
        "preprocess": spec.to_dict(),
    }
    return model, report, (vimgs, vboxes)
