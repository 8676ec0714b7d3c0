"""Small, real training runs on data that ships with the dependencies (workstation side)."""

from __future__ import annotations

import keras
import numpy as np

from edgecnn.calibration.datasets import digits_images
from edgecnn.calibration.preprocess import PreprocessSpec
from edgecnn.models.registry import build

DIGITS_SPEC = PreprocessSpec.for_input(32, 32, 1, "unit", labels=[str(i) for i in range(10)])


def digits_split(test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn digits as (train ImageSet, test ImageSet), a fixed shuffled split."""
    data = digits_images(None, seed)
    n_test = int(len(data.images) * test_fraction)
    from edgecnn.calibration.datasets import ImageSet

    test = ImageSet(data.images[:n_test], data.source, 0, data.labels[:n_test], data.class_names)
    train = ImageSet(data.images[n_test:], data.source, 0, data.labels[n_test:], data.class_names)
    return train, test


def train_lenet_digits(epochs: int = 8, seed: int = 0, classic: bool = True, verbose: int = 0):
    """LeNet-5 trained on scikit-learn's digits through the one preprocessing spec.

    Returns (model, test ImageSet, test accuracy). A few seconds on two cores.
    """

    keras.utils.set_random_seed(seed)
    train, test = digits_split(seed=seed)
    x = DIGITS_SPEC.apply_batch(train.images)
    y = np.asarray(train.labels)
    model = build("lenet5", classic=classic)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=verbose, validation_split=0.0)
    xt = DIGITS_SPEC.apply_batch(test.images)
    acc = float((model.predict(xt, verbose=0).argmax(1) == np.asarray(test.labels)).mean())
    return model, test, acc


# ---------------------------------------------------------------- siamese / triplet


def train_siamese(data, holdout: int | None = None, backbone: str = "lenet5", backbone_options=None, embedding_dim: int = 32,
                  epochs: int = 30, margin: float = 0.2, input_size: int | None = None, channels: int | None = None,
                  seed: int = 0, max_pairs: int = 40000, progress: bool = False):
    """Train the ``siamese`` builder with batch-hard triplet loss on some identities and measure one-shot
    verification (ROC AUC, equal-error rate) on identities it never saw.

    ``data``: an ImageSet with labels and class names (one class per identity). The last ``holdout``
    classes (default 30%, at least 2) are held out.
    """

    from edgecnn.errors import InputError
    from edgecnn.faces import roc
    from edgecnn.models.siamese import batch_hard_triplet_loss

    keras.utils.set_random_seed(seed)
    if data.labels is None or not data.class_names:
        raise InputError("siamese training needs one folder per identity")
    n_classes = len(data.class_names)
    holdout = holdout if holdout is not None else max(2, round(0.3 * n_classes))
    if n_classes - holdout < 2 or holdout < 2:
        raise InputError(f"need at least 2 training and 2 held-out identities; have {n_classes} identities, {holdout} held out")
    held = set(range(n_classes - holdout, n_classes))
    first = data.images[0]
    size = input_size or max(32, min(first.shape[0], first.shape[1], 160))
    ch = channels or (1 if first.ndim == 2 or first.shape[2] == 1 else 3)
    spec = PreprocessSpec.for_input(size, size, ch, "unit")
    x = spec.apply_batch(data.images)
    y = np.asarray(data.labels)
    tr, te = ~np.isin(y, list(held)), np.isin(y, list(held))
    opts = dict(backbone_options or ({"classic": False} if backbone == "lenet5" else {}))
    model = build("siamese", input_shape=(size, size, ch), backbone=backbone, embedding_dim=embedding_dim, backbone_options=opts)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=batch_hard_triplet_loss(margin))
    rng = np.random.default_rng(seed)
    xtr, ytr = x[tr], y[tr]
    classes = np.unique(ytr)
    by_class = {c: np.flatnonzero(ytr == c) for c in classes}
    p_classes, k = min(len(classes), 8), 8
    steps = max(1, len(xtr) // (p_classes * k))
    history = []
    for epoch in range(epochs):
        losses = []
        for _ in range(steps):
            cs = rng.choice(classes, p_classes, replace=False)
            idx = np.concatenate([rng.choice(by_class[c], k, replace=len(by_class[c]) < k) for c in cs])
            losses.append(float(model.train_on_batch(xtr[idx], ytr[idx])))
        history.append(round(float(np.mean(losses)), 4))
        if progress:
            print(f"epoch {epoch + 1}/{epochs}: batch-hard triplet loss {history[-1]:.4f}", flush=True)
    emb = model.predict(x[te], verbose=0)
    yte = y[te]
    iu = np.triu_indices(len(yte), 1)
    if len(iu[0]) > max_pairs:
        pick = rng.choice(len(iu[0]), max_pairs, replace=False)
        iu = (iu[0][pick], iu[1][pick])
    d = np.linalg.norm(emb[iu[0]] - emb[iu[1]], axis=1)
    same = yte[iu[0]] == yte[iu[1]]
    r = roc(d[same], d[~same])
    report = {
        "backbone": backbone,
        "embedding_dim": embedding_dim,
        "input_shape": [size, size, ch],
        "margin": margin,
        "epochs": epochs,
        "loss_history": history,
        "train_identities": [data.class_names[c] for c in sorted(set(range(n_classes)) - held)],
        "heldout_identities": [data.class_names[c] for c in sorted(held)],
        "heldout_images": int(te.sum()),
        "pairs": {"same": int(same.sum()), "different": int((~same).sum())},
        "roc_auc": round(r["auc"], 4),
        "eer": round(r["eer"], 4),
        "threshold": round(r["eer_threshold"], 4),
        "preprocess": spec.to_dict(),
    }
    return model, report


# ---------------------------------------------------------------- YOLO on generated scenes

SHAPES = ("circle", "square", "triangle")


def make_shapes_dataset(n: int, size: int = 96, seed: int = 0, max_objects: int = 3):
    """Scenes of shapes composited onto crops of real photographs, with their boxes known.

    Returns (images BGR uint8, boxes) where boxes[i] is a list of (class, x1, y1, x2, y2) in [0, 1].
    """
    import cv2

    from edgecnn.calibration.datasets import _photos
    from edgecnn.detection import iou

    rng = np.random.default_rng(seed)
    photos = _photos()
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


def average_precision(scores_hits, n_truth: int) -> float:
    """VOC all-point interpolated AP from (score, is_true_positive) pairs."""
    if n_truth == 0:
        return float("nan")
    if not scores_hits:
        return 0.0
    order = sorted(scores_hits, key=lambda t: -t[0])
    tp = np.cumsum([h for _, h in order])
    fp = np.cumsum([1 - h for _, h in order])
    recall = tp / n_truth
    precision = tp / np.maximum(tp + fp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def mean_average_precision(detections, truths, num_classes: int, iou_threshold: float = 0.5) -> dict:
    """mAP@``iou_threshold``: ``detections[i]`` are Detection-like (box in [0,1], score, label) per image."""
    from edgecnn.detection import iou

    per_class = {}
    for c in range(num_classes):
        hits, n_truth = [], 0
        for dets, gts in zip(detections, truths):
            g = [t[1:] for t in gts if t[0] == c]
            n_truth += len(g)
            used = [False] * len(g)
            for d in sorted((d for d in dets if d.label == c), key=lambda d: -d.score):
                if g:
                    ious = iou(d.box, g)
                    j = int(np.argmax(ious))
                    if ious[j] >= iou_threshold and not used[j]:
                        used[j] = True
                        hits.append((d.score, 1))
                        continue
                hits.append((d.score, 0))
        per_class[c] = average_precision(hits, n_truth)
    valid = [v for v in per_class.values() if v == v]
    return {"map": float(np.mean(valid)) if valid else 0.0, "per_class": per_class}


def train_yolo(n_train: int = 1600, n_val: int = 300, epochs: int = 30, input_size: int = 96, anchors=None, seed: int = 0,
               batch_size: int = 32, progress: bool = False):
    """Train the ``yolo`` builder on generated scenes; returns (model, report with float mAP@0.5, val data)."""

    from edgecnn.detection import decode_yolo

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


def save_with_sidecar(model, path, info: dict) -> None:
    """Save ``model`` as .keras with the ``.edgecnn.json`` that ``edgecnn convert`` reads."""
    import json
    from pathlib import Path

    from edgecnn.converters.sources import sidecar_path

    p = Path(path)
    model.save(p)
    sidecar_path(p).write_text(json.dumps(info, indent=2))
