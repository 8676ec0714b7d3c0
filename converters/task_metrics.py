"""The metric a task needs, measured after decoding: a detector is judged by the boxes it finds, a
segmenter by its mask, an embedder by the accept/reject decisions it makes, never by raw-output cosine
(a cosine of 0.996 can hide a tenth of the boxes lost). Each figure comes with its 95% interval and
its sample count, for the verdict.

The quantized model is compared with the fp32 one on the same held-out images, both decoded by the
same decoder the camera loop runs (:mod:`edgecnn.device.detectors`).
"""

from __future__ import annotations

import numpy as np

from edgecnn.converters.verdict import mean_interval, wilson
from edgecnn.core.errors import InputError

IOU_MATCH = 0.5


def decoded_task(path) -> str | None:
    """``detection`` or ``segmentation`` where the camera loop's decoders read this model's outputs."""
    from edgecnn.device.detectors import Classifier, Segmenter, open_detector

    try:
        d = open_detector(str(path), target="cpu", threads=1, warn=lambda _m: None)
    except InputError:
        return None
    if isinstance(d, Classifier):
        return None
    return "segmentation" if isinstance(d, Segmenter) else "detection"


def decoded_agreement(task: str, fp32_path, q_path, images) -> dict:
    """Quantized against fp32, decoded: box recall, precision and agreement at IoU 0.5 (a detection is
    matched by one of the same label), or the mask IoU per image."""
    from edgecnn.device.detectors import open_detector

    quiet = dict(target="cpu", threads=1, warn=lambda _m: None)
    ref, got = open_detector(str(fp32_path), **quiet), open_detector(str(q_path), **quiet)
    pairs = [(ref.detect(im), got.detect(im)) for im in images]
    if task == "segmentation":
        return _mask_iou(pairs, images)
    matched = n_ref = n_got = 0
    for r, g in pairs:
        matched += _matches(r, g)
        n_ref, n_got = n_ref + len(r), n_got + len(g)
    union = n_ref + n_got - matched
    out = {"images": len(images), "boxes_fp32": n_ref, "boxes_quantized": n_got}
    for name, k, n in (("box_recall", matched, n_ref), ("box_precision", matched, n_got), ("box_agreement", matched, union)):
        out[name] = k / n if n else 1.0
        out[name + "_ci95"] = list(wilson(k, n)) if n else [1.0, 1.0]
    out["box_agreement_samples"] = union
    if union == 0:
        out["note"] = (
            "neither the fp32 nor the quantized model found anything on the held-out images: boxes cannot be compared; "
            "evaluate on images with the objects it detects (--calibration, --eval)"
        )
    return out


def _matches(ref: list, got: list) -> int:
    """Greedy one-to-one matching, best IoU first, same label only."""
    from edgecnn.core.detection import iou

    if not ref or not got:
        return 0
    cand = []
    for i, r in enumerate(ref):
        ious = iou(r.box, [g.box for g in got])
        cand += [(float(v), i, j) for j, v in enumerate(ious) if v >= IOU_MATCH and got[j].label == r.label]
    used_r, used_g, n = set(), set(), 0
    for _, i, j in sorted(cand, reverse=True):
        if i not in used_r and j not in used_g:
            used_r.add(i)
            used_g.add(j)
            n += 1
    return n


def _mask_iou(pairs, images) -> dict:
    ious = []
    for (r, g), im in zip(pairs, images):
        a = r[0].mask if r else np.zeros(im.shape[:2], bool)
        b = g[0].mask if g else np.zeros(im.shape[:2], bool)
        union = np.count_nonzero(a | b)
        ious.append(np.count_nonzero(a & b) / union if union else 1.0)  # both empty: the same answer
    return {"images": len(images), "mask_iou": float(np.mean(ious)), "mask_iou_ci95": list(mean_interval(ious)), "mask_iou_min": float(np.min(ious))}


def decision_agreement(ref: list, got: list, threshold: float | None = None) -> dict:
    """An embedder's accept/reject decisions on pairs of held-out inputs (disjoint pairs: each input in
    one, so the interval counts independent trials), fp32 against quantized, at ``threshold`` on the
    distance of the L2-normalised embeddings (default: the fp32 pairs' median, where a decision is
    hardest)."""
    a = np.stack([np.ravel(x) for x in ref]).astype(np.float64)
    b = np.stack([np.ravel(x) for x in got]).astype(np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-12  # thresholds are on L2-normalised embeddings, as the device compares them
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-12
    n = len(a) // 2
    if n == 0:
        return {}
    d_ref = np.linalg.norm(a[0 : 2 * n : 2] - a[1 : 2 * n : 2], axis=1)
    d_got = np.linalg.norm(b[0 : 2 * n : 2] - b[1 : 2 * n : 2], axis=1)
    t = float(np.median(d_ref)) if threshold is None else float(threshold)
    same = int(((d_ref < t) == (d_got < t)).sum())
    return {"decision_agreement": same / n, "decision_agreement_ci95": list(wilson(same, n)), "decision_agreement_samples": n, "decision_threshold": t}


def add_task_metrics(c, acc: dict, f_path, q_path, q_out: list) -> None:
    """Add the task's own metric to ``acc`` (the raw-output figures of a quantized model at ``q_path``,
    whose outputs on the conversion ``c``'s held-out inputs are ``q_out``, against the fp32 file at
    ``f_path``): the decoded boxes or masks, or an embedder's decisions. The verdict is taken on it
    (``verdict.METRICS``)."""
    if c.src.task in ("detection", "segmentation"):
        acc.update(decoded_agreement(c.src.task, f_path, q_path, c.held_out.images))
    elif c.src.task == "embedding":
        acc.update(decision_agreement(c.float_ref, q_out, embedder_threshold(c.meta)))


def embedder_threshold(meta: dict) -> float | None:
    """The distance at which the device accepts a face as the same person (edgecnn.device.faces' default for the
    family, or one the metadata carries); None where there is none (the median decides)."""
    from edgecnn.device.faces import DEFAULT_THRESHOLDS

    if meta.get("threshold"):
        return float(meta["threshold"])
    name = str(meta.get("name") or "")
    return next((t for family, t in DEFAULT_THRESHOLDS.items() if family in name), None)
