"""Evaluation metrics shared by training, face verification and the reports (numpy only):
ROC over distances (AUC, equal-error rate) and detection AP / mAP."""

from __future__ import annotations

import numpy as np

from edgecnn.core.detection import iou
from edgecnn.core.errors import InputError


def roc(same_d, diff_d) -> dict:
    """ROC over distance thresholds: AUC, equal-error rate and its threshold ."""
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
