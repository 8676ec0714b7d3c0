"""Evaluation of a converted model against its float original, through the real device interpreter:
output agreement on held-out samples, real top-1 on a labelled folder, latency beside fp32."""

from __future__ import annotations

import os

import numpy as np

from edgecnn.calibration.datasets import image_folder
from edgecnn.converters.verdict import DEFAULT_TOLERANCE, mean_interval, metric_of, wilson
from edgecnn.core.errors import InputError
from edgecnn.core.files import remove_temp, temp_file
from edgecnn.device.profiling import summarize, time_invocations
from edgecnn.device.runtime import Model


def bytes_to_model(data: bytes, name: str, temp_files: list | None = None):
    """Load converted bytes through the device runtime (the real interpreter) via a temp file, whose
    path goes into ``temp_files`` the moment it exists (so an interrupt can never leak it)."""
    fd, tmp = temp_file(prefix=f"edgecnn-{name}.", suffix=".tflite")  # the temp folder: the output folder may be small; removed at exit
    if temp_files is not None:
        temp_files.append(tmp)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        # bytes the TFLite converter made a moment ago: loaded here directly (a crash would be the
        # converter's bug, not a user's damaged file); the verdict is recorded once it ran
        return Model(tmp, target="cpu", warn=lambda _m: None, isolate=False), tmp
    except BaseException:
        remove_temp(tmp)
        raise


def outputs(model, xs) -> list[np.ndarray]:
    return [model.run(x)[0] for x in xs]


def compare_outputs(task: str, ref: list, got: list) -> dict:
    """Quantized vs float on the same prepared inputs."""
    ref_a, got_a = np.stack(ref).reshape(len(ref), -1), np.stack(got).reshape(len(got), -1)
    err = got_a - ref_a
    out = {
        "samples": len(ref),
        "mean_abs_error": float(np.abs(err).mean()),
        "max_abs_error": float(np.abs(err).max()),
        "relative_rmse": float(np.sqrt((err**2).mean()) / (np.sqrt((ref_a**2).mean()) + 1e-12)),
    }
    if task == "classification":
        same = ref_a.argmax(1) == got_a.argmax(1)
        out["top1_agreement"] = float(same.mean())
        out["top1_agreement_ci95"] = list(wilson(int(same.sum()), len(same)))
        if ref_a.shape[1] >= 5:  # the float model's answer among the quantized one's five best
            top5 = np.argsort(-got_a, axis=1)[:, :5]
            out["top5_agreement"] = float((top5 == ref_a.argmax(1)[:, None]).any(1).mean())
        if ref_a.shape[1] > 1 and float(ref_a.max(1).mean()) < 2.0 / ref_a.shape[1]:
            out["note"] = "the float model's outputs are nearly uniform (untrained weights?): these numbers say little about a trained model"
    if task in ("embedding", "classification", "other", "detection"):
        cos = (ref_a * got_a).sum(1) / (np.linalg.norm(ref_a, axis=1) * np.linalg.norm(got_a, axis=1) + 1e-12)
        out["cosine_mean"] = float(cos.mean())
        out["cosine_mean_ci95"] = list(mean_interval(cos))
        out["cosine_min"] = float(cos.min())
    return out


def lost(task: str, acc: dict, tolerance: float | None = None) -> bool:
    """The task's metric below its tolerance (the default one, or the user's)."""
    metric = metric_of(task, acc)
    return acc.get(metric, 1.0) < (DEFAULT_TOLERANCE[metric] if tolerance is None else tolerance)


def proven(task: str, acc: dict, tolerance: float | None = None) -> bool:
    """The task's metric within its tolerance with 95% confidence: the lower end of its interval (what
    the verdict's "deploy" asks for)."""
    metric = metric_of(task, acc)
    lo = (acc.get(metric + "_ci95") or [acc.get(metric, 0.0)])[0]
    return lo >= (DEFAULT_TOLERANCE[metric] if tolerance is None else tolerance)


def evaluate_folder(folder, spec, q_model, f_model, limit: int) -> dict:
    """Real top-1 of the float and converted models on a folder of class subfolders."""
    data = image_folder(folder, limit, with_classes=True, min_side=2 * max(spec.height, spec.width))
    if not data.images:
        raise InputError(f"--eval {folder}: no images in class subfolders")
    xs = [spec.apply(im) for im in data.images]
    y = np.asarray(data.labels)
    fq = np.stack(outputs(q_model, xs)).reshape(len(xs), -1).argmax(1)
    ff = np.stack(outputs(f_model, xs)).reshape(len(xs), -1).argmax(1)
    return {"samples": len(xs), "classes": data.class_names, "top1": float((fq == y).mean()), "float_top1": float((ff == y).mean())}


def latency_vs_fp32(model, fp32_model, x) -> dict:
    """p50 of the converted model beside the fp32 one, same input and threads, in this process."""
    p50 = {}
    for label, m in (("model", model), ("fp32", fp32_model)):
        _, times = time_invocations(m, x, runs=30, warmup=3)
        p50[label] = summarize(times)["p50"]
    return {"p50": p50["model"], "fp32_p50": p50["fp32"], "speedup_vs_fp32": round(p50["fp32"] / p50["model"], 3), "threads": model.threads}
