"""Latency prediction for a device you do not have, fitted to several published results.

Each target profile lists ``[[predict.reference]]`` results (model, multiply-accumulates, precision,
threads, milliseconds, source). The model fitted per target is

    ms = MACs * k[precision] / threads**a[precision] + c

with one cost per MAC and one thread-scaling exponent for each precision class (``int8``; ``float``
for fp32/fp16; ``a`` 0: no gain from threads, 1: linear; float kernels run out of memory bandwidth
sooner) and a fixed per-inference overhead ``c``. For each pair of exponents on a grid the rest is a
linear least-squares fit of the relative error; the best pair wins.
Leave-one-out: each reference is predicted by the fit to the others, and the error reported is what a
user should expect on a model the fit has not seen. The MAC counts of the detection models are
estimates (their sources say which); the published timings come from different runtimes and years,
which is most of the error.
"""

from __future__ import annotations

import numpy as np

from edgecnn.core.errors import EdgecnnError, InputError

CLASSES = ("int8", "float")


def precision_class(precision: str) -> str:
    return "int8" if str(precision).lower() in ("int8", "uint8", "int16x8", "edgetpu") else "float"


def _design(refs, classes, a: dict):
    rows = []
    for r in refs:
        cls = precision_class(r["precision"])
        scale = float(r["macs"]) / float(r.get("threads", 1)) ** a[cls]
        rows.append([scale if cls == c else 0.0 for c in classes] + [1.0])
    return np.array(rows)


def _solve(refs, classes, a):
    """k per class and c for a fixed ``a``, minimising squared relative error; c >= 0, k > 0."""
    ms = np.array([float(r["ms"]) for r in refs])
    X = _design(refs, classes, a) / ms[:, None]
    y = np.ones(len(refs))
    sol, *_ = np.linalg.lstsq(X, y, rcond=None)
    if sol[-1] < 0 or np.any(sol[:-1] <= 0):  # no negative overhead: refit through the origin
        sol = np.append(np.linalg.lstsq(X[:, :-1], y, rcond=None)[0], 0.0)
    err = X @ sol - 1.0
    return sol, float(np.sum(err**2))


def fit(refs) -> dict:
    """Fit the latency model to ``refs`` (dicts with macs, precision, threads, ms)."""
    if not refs:
        raise InputError("no reference results to fit")
    import itertools

    classes = [c for c in CLASSES if any(precision_class(r["precision"]) == c for r in refs)]
    grids = []
    for c in classes:  # an exponent is fitted only where that class has results at several thread counts
        varied = len({int(r.get("threads", 1)) for r in refs if precision_class(r["precision"]) == c}) > 1
        grids.append(np.linspace(0.0, 1.0, 51) if varied else [0.0])
    best = None
    for combo in itertools.product(*grids):
        a = dict(zip(classes, map(float, combo)))
        sol, sse = _solve(refs, classes, a)
        if best is None or sse < best[2] - 1e-12:
            best = (a, sol, sse)
    a, sol, _ = best
    return {
        "k_ms_per_gmac": {c: float(sol[i]) * 1e9 for i, c in enumerate(classes)},
        "thread_exponent": {c: round(v, 2) for c, v in a.items()},
        "overhead_ms": float(sol[-1]),
        "classes": classes,
    }


def predict_ms(model: dict, macs: float, precision: str, threads: int) -> float:
    cls = precision_class(precision)
    if cls not in model["k_ms_per_gmac"]:  # a class the references lack: the other class's rate (said in the basis)
        cls = model["classes"][0]
    k, a = model["k_ms_per_gmac"][cls], model["thread_exponent"][cls]
    return macs / 1e9 * k / max(1, threads) ** a + model["overhead_ms"]


def leave_one_out(refs) -> dict:
    """Each reference predicted by the fit to the others: per-reference error and the summary."""
    rows = []
    for i, r in enumerate(refs):
        rest = refs[:i] + refs[i + 1 :]
        if not rest or not any(precision_class(x["precision"]) == precision_class(r["precision"]) for x in rest):
            rows.append(
                {
                    "model": r["model"],
                    "ms": r["ms"],
                    "predicted_ms": None,
                    "error": None,
                    "note": "the only reference of its precision: not predictable from the others",
                }
            )
            continue
        m = fit(rest)
        p = predict_ms(m, float(r["macs"]), r["precision"], int(r.get("threads", 1)))
        rows.append(
            {
                "model": r["model"],
                "precision": r["precision"],
                "threads": int(r.get("threads", 1)),
                "ms": r["ms"],
                "predicted_ms": round(p, 2),
                "error": round(p / float(r["ms"]) - 1.0, 3),
            }
        )
    errs = [abs(x["error"]) for x in rows if x["error"] is not None]
    return {
        "per_reference": rows,
        "mean_abs_error": round(float(np.mean(errs)), 3) if errs else None,
        "max_abs_error": round(float(np.max(errs)), 3) if errs else None,
        "predicted": len(errs),
    }


def references(target) -> list[dict]:
    pred = target.predict or {}
    refs = pred.get("reference") or []
    for r in refs:
        missing = {"model", "macs", "precision", "ms", "source"} - set(r)
        if missing:
            raise InputError(f"target profile {target.source}: a [[predict.reference]] lacks {sorted(missing)}")
    return list(refs)


def summary(target) -> dict | None:
    """The fit and its leave-one-out error for a target profile (``edgecnn targets --json``), fitted once
    per set of references and kept in the data folder (the fit and its leave-one-out take seconds)."""
    import hashlib
    import json

    from edgecnn import __version__
    from edgecnn.core.paths import data_dir

    refs = references(target)
    if not refs:
        return None
    key = hashlib.sha256(json.dumps([refs, __version__], sort_keys=True, default=str).encode()).hexdigest()[:24]
    cached = data_dir() / "fits" / f"{key}.json"
    try:
        return json.loads(cached.read_text())
    except (OSError, ValueError):
        pass
    model = fit(refs)
    model.update({"references": refs, "leave_one_out": leave_one_out(refs)})
    try:  # best effort: a read-only data folder only costs the next fit
        from edgecnn.core.files import write_json

        cached.parent.mkdir(parents=True, exist_ok=True)
        write_json(cached, model)
    except (OSError, EdgecnnError):  # InputError included
        pass
    return model
