"""Is the converted model the same model? The fp32 TFLite against its source framework (onnxruntime
for ONNX, Keras for Keras) on the same prepared inputs, every output compared: matched by name, then
by shape (a converter may reorder and transpose outputs), each against its own scale.
Workstation side: numpy, onnxruntime where the source is ONNX."""

from __future__ import annotations

import re

import numpy as np

from edgecnn.core.errors import EdgecnnError


def onnx_session(onnx_path: str, threads: int = 2):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    return ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])


def run_onnxruntime(onnx_path: str, feeds: dict, threads: int = 2) -> list[np.ndarray]:
    return onnx_session(onnx_path, threads).run(None, feeds)


def to_onnx_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """A prepared NHWC tensor (no batch) as the ONNX input wants it (with batch 1)."""
    x = np.asarray(x, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]) if layout == "NCHW" else x[None]


def match_layout(ort_out: np.ndarray, tfl_shape: tuple) -> np.ndarray | None:
    """onnxruntime's output (batch axis included) as the TFLite output's shape (no batch axis): the same
    values, or a 4-D NCHW output that onnx2tf turned NHWC; None where the shapes cannot be the same."""
    y = np.asarray(ort_out)
    tfl_shape = tuple(tfl_shape)
    if y.shape[1:] == tfl_shape or y.shape == tfl_shape:
        return y.reshape(tfl_shape)
    if y.ndim == 4 and (y.shape[2], y.shape[3], y.shape[1]) == tfl_shape:
        return y.transpose(0, 2, 3, 1)[0]
    if y.ndim == 3 and (y.shape[2], y.shape[1]) == tfl_shape:  # N, C, L -> N, L, C
        return y.transpose(0, 2, 1)[0]
    return None


REFERENCE_MEAN_ABS = 1e-4  # an absolute bound, for networks whose outputs are images in [0, 1] (style transfer)
# fp32 TFLite against its source: what "the same model" means here. Relative to each output's own scale
# (its RMS over the samples), with a floor so that an output that is near zero everywhere is compared
# absolutely: a cosine of two near-zero vectors says nothing, and is not used for the verdict.
REFERENCE_RELATIVE = 1e-4
REFERENCE_SCALE_FLOOR = 1e-3


def sanitized(name: str) -> str:
    """An output name the way TensorFlow's SavedModel signatures can hold it (onnx2tf's spelling)."""
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", name)


def match_outputs(ref_names: list, ref: list, got_names: list | None, got: list) -> list[tuple[int, int]]:
    """Pairs (ONNX output i, TFLite output j): by name first (the converter may reorder outputs), then
    by shape (it may transpose them), the closest values deciding between outputs of one shape. One
    TFLite output per ONNX output; an ONNX output that finds none is an error naming both sides."""
    got_names = list(got_names or [None] * len(got))
    by_name = {sanitized(n): j for j, n in enumerate(got_names) if n}
    pairs, free = {}, set(range(len(got)))
    for i, name in enumerate(ref_names):
        j = by_name.get(sanitized(name))
        if j is not None and j in free and match_layout(ref[i], got[j].shape) is not None:
            pairs[i] = j
            free.discard(j)
    rest = [i for i in range(len(ref)) if i not in pairs]
    options = {i: [j for j in free if match_layout(ref[i], got[j].shape) is not None] for i in rest}
    for i in sorted(rest, key=lambda k: len(options[k])):
        cands = [j for j in options[i] if j in free]
        if not cands:
            raise EdgecnnError(
                f"cannot match the onnxruntime output {ref_names[i]!r} {tuple(np.shape(ref[i]))} to any TFLite output "
                f"({', '.join(str(tuple(g.shape)) for g in got)}): onnx2tf changed its shape"
            )
        j = min(cands, key=lambda k: float(np.abs(match_layout(ref[i], got[k].shape) - got[k]).mean()))
        pairs[i] = j
        free.discard(j)
    return sorted(pairs.items())


def reference_check(imp, tflite_model, xs: list) -> dict:
    """The fp32 TFLite against onnxruntime on the same prepared inputs (real held-out images), every
    output compared (see :func:`match_outputs`), each against its own scale."""
    ((name, info),) = imp.inputs.items()
    session = onnx_session(imp.float_onnx)  # one session for every input
    ref_runs = [session.run(None, {name: to_onnx_layout(x, info["layout"])}) for x in xs]
    return compare_with_source("onnxruntime", list(imp.outputs), ref_runs, tflite_model, xs)


def compare_with_source(against: str, names: list, ref_runs: list, tflite_model, xs: list) -> dict:
    """The fp32 TFLite's outputs against the source framework's (``ref_runs``: per input, its list of
    outputs with the batch axis) on the same prepared inputs; the verdict in ``ok``."""
    got_runs = [tflite_model.run(x) for x in xs]
    if len(names) != len(ref_runs[0]):
        names = [f"output_{i}" for i in range(len(ref_runs[0]))]
    pairs = match_outputs(names, ref_runs[0], getattr(tflite_model, "output_names", None), got_runs[0])
    per_output = []
    for i, j in pairs:
        ref = np.stack([match_layout(r[i], g[j].shape) for r, g in zip(ref_runs, got_runs)]).astype(np.float64)
        got = np.stack([g[j] for g in got_runs]).astype(np.float64)
        d = np.abs(got - ref)
        rms = float(np.sqrt((ref**2).mean()))
        tol = REFERENCE_RELATIVE * max(rms, REFERENCE_SCALE_FLOOR)
        row = {
            "name": names[i],
            "tflite_index": j,
            "shape": list(got.shape[1:]),
            "scale_rms": rms,
            "mean_abs_error": float(d.mean()),
            "max_abs_error": float(d.max()),
            "tolerance_mean_abs": tol,
            "ok": bool(d.mean() <= tol),
        }
        a, b = got.reshape(len(xs), -1), ref.reshape(len(xs), -1)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        meaningful = norms > (REFERENCE_SCALE_FLOOR**2) * a.shape[1]  # a cosine only where the vectors are not near zero
        if meaningful.any():
            row["cosine_min"] = float(((a * b).sum(1)[meaningful] / norms[meaningful]).min())
        if ref.ndim == 2 and ref.shape[1] > 1:
            row["top1_agreement"] = float((a.argmax(1) == b.argmax(1)).mean())
        per_output.append(row)
    worst = max(per_output, key=lambda r: r["mean_abs_error"] / r["tolerance_mean_abs"])
    out = {
        "against": against,
        "samples": len(xs),
        "outputs": per_output,
        "mean_abs_error": worst["mean_abs_error"],
        "max_abs_error": max(r["max_abs_error"] for r in per_output),
        "tolerance_mean_abs": worst["tolerance_mean_abs"],
        "worst_output": worst["name"],
        "order": [j for _, j in pairs],
        "ok": all(r["ok"] for r in per_output),
    }
    cosines = [r["cosine_min"] for r in per_output if "cosine_min" in r]
    if cosines:
        out["cosine_min"] = min(cosines)
    first = per_output[0]
    if "top1_agreement" in first:
        out["top1_agreement"] = first["top1_agreement"]
    return out
