"""Whether to ship a converted model: the task's metric on held-out inputs, with its 95% interval, against
a tolerance the user can set, and whether it is faster than fp32. Reports are JSON first; the verdict
is their first line in text and HTML.

A verdict is only as good as its samples: a top-1 agreement of 1.000 on 9 inputs is compatible with a
true 0.70 (Wilson's interval), so a figure whose interval straddles the tolerance is "undecided" and
says how to decide it, never "deploy".
"""

from __future__ import annotations

import math

import numpy as np

# The metric that decides, per task, and the default tolerance on it (overridable: --tolerance).
METRICS = {
    "classification": "top1_agreement",
    "embedding": "decision_agreement",
    "detection": "box_agreement",
    "segmentation": "mask_iou",
    "other": "cosine_mean",
}
DEFAULT_TOLERANCE = {"top1_agreement": 0.98, "cosine_mean": 0.98, "decision_agreement": 0.98, "box_agreement": 0.95, "mask_iou": 0.95}
DEPLOY, WITH_FLOAT, DO_NOT, UNDECIDED = "deploy", "deploy with the listed float layers", "do not deploy", "undecided"
UNITS = {"box_agreement": "boxes found by either model", "decision_agreement": "pairs of held-out inputs"}  # what a metric's sample counts
SLOWER = 0.9  # below this speed-up over fp32, the quantized file is said to be slower


def metric_of(task: str | None, accuracy: dict | None) -> str:
    """The metric that decides for ``task``; the raw outputs' cosine where nothing decoded them."""
    metric = METRICS.get(task or "other", "cosine_mean")
    if accuracy and metric not in accuracy and "cosine_mean" in accuracy:
        return "cosine_mean"
    return metric


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (sound at 0 and 1 and for small n)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values, z: float = 1.96) -> tuple[float, float]:
    """The 95% interval of a mean (normal approximation; a single value gives no width)."""
    v = np.asarray(values, np.float64)
    if v.size < 2:
        return float(v.mean()) if v.size else 0.0, float(v.mean()) if v.size else 0.0
    half = z * float(v.std(ddof=1)) / math.sqrt(v.size)
    return float(v.mean()) - half, float(v.mean()) + half


def decide(
    task: str | None, precision: str, accuracy: dict | None, tolerance: float | None = None, kept_float: list | None = None, reference: dict | None = None
) -> dict:
    """The verdict on the accuracy a converted model keeps, with the reason."""
    if precision == "fp32":
        if reference is not None and not reference.get("ok"):
            return {"verdict": DO_NOT, "reason": "the fp32 file does not match its source"}
        why = f"the same model as its source ({reference['against']} on {reference['samples']} inputs)" if reference else "nothing was quantized"
        return {"verdict": DEPLOY, "reason": f"fp32: {why}"}
    metric = metric_of(task, accuracy)
    tol = DEFAULT_TOLERANCE[metric] if tolerance is None else float(tolerance)
    if not accuracy or metric not in accuracy:
        return {
            "verdict": UNDECIDED,
            "metric": metric,
            "tolerance": tol,
            "reason": "no held-out inputs to measure it on: give --held-out N (or --eval DIR) with a calibration source",
        }
    value, n = float(accuracy[metric]), int(accuracy.get(metric + "_samples", accuracy["samples"]))
    if n == 0:
        return {
            "verdict": UNDECIDED,
            "metric": metric,
            "tolerance": tol,
            "samples": 0,
            "reason": accuracy.get("note") or f"nothing to measure {metric.replace('_', ' ')} on",
        }
    lo, hi = accuracy.get(metric + "_ci95", (value, value))
    base = {"metric": metric, "value": value, "ci95": [lo, hi], "samples": n, "tolerance": tol}
    shown = f"{metric.replace('_', ' ')} {value:.3f} (95% {lo:.3f}-{hi:.3f}, {n} {UNITS.get(metric, 'held-out inputs')})"
    if lo >= tol:
        if kept_float:
            return {
                **base,
                "verdict": WITH_FLOAT,
                "float_layers": list(kept_float),
                "reason": f"{shown} >= {tol:g} with {len(kept_float)} layer(s) kept in float",
            }
        return {**base, "verdict": DEPLOY, "reason": f"{shown} >= {tol:g}"}
    if hi < tol:
        how = " even with the listed layers in float" if kept_float else "; try --keep-float auto, per-channel calibration or more calibration data"
        return {**base, "verdict": DO_NOT, "float_layers": list(kept_float or []), "reason": f"{shown} < {tol:g}{how}"}
    return {
        **base,
        "verdict": UNDECIDED,
        "reason": f"{shown}: the interval straddles {tol:g}; measure on more held-out inputs (--held-out {max(200, 4 * n)}, --eval DIR)",
    }


def speed(latency: dict | None, target: str) -> dict | None:
    """Faster or slower than fp32, as measured here; a slower quantized file is said plainly."""
    if not latency or not latency.get("fp32_p50"):
        return None
    s = float(latency["speedup_vs_fp32"])
    where = f"on this machine ({latency.get('threads')} threads)"
    if s < SLOWER:
        return {
            "verdict": "slower",
            "speedup_vs_fp32": s,
            "reason": f"{1 / s:.2f}x SLOWER than the fp32 file {where}: on CPU, fp32 may be the better choice"
            + ("" if target == "cpu" else f"; measure on {target} itself (edgecnn profile)"),
        }
    label = "faster" if s > 1 / SLOWER else "about as fast"
    return {"verdict": label, "speedup_vs_fp32": s, "reason": f"{s:.2f}x the fp32 file's speed {where}"}


def headline(report: dict) -> str:
    """The report's first line: the verdict, its reason, and the speed beside it."""
    v = report.get("verdict") or {}
    line = f"{v.get('verdict', 'undecided').upper()}: {v.get('reason', '')}"
    sp = report.get("speed")
    return line + (f" · speed: {sp['reason']}" if sp else "")
