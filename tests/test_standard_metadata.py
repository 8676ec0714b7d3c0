"""The standard TFLite metadata edgecnn writes (TFLITE_METADATA and the packed label file), read by another
runtime: MediaPipe Tasks' ImageClassifier, on a small digit classifier edgecnn converted, answers as
edgecnn does (its answers recorded by tests/fixtures/mediapipe_tasks_reference.py; MediaPipe cannot be
installed beside TensorFlow). And what edgecnn writes, edgecnn's Task-Library-style reader reads back."""

import hashlib
import json

import numpy as np
import pytest
from helpers import FIXTURES, run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]

LABELS = [str(i) for i in range(10)]


def write_digit_images(folder, n: int = 12):
    """Held-out scikit-learn digits as 32x32 RGB PNGs: the model's own input size, so no resize differs."""
    from pathlib import Path

    import cv2

    from edgecnn.models.train.digits import digits_split

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _, test = digits_split()
    for i in range(n):
        grey = np.asarray(test.images[i], np.uint8)
        cv2.imwrite(str(folder / f"d{i:02d}.png"), np.repeat(grey[..., None], 3, -1))
    return folder


@pytest.fixture(scope="module")
def digits_rgb(tmp_path_factory):
    out = tmp_path_factory.mktemp("std") / "digits_rgb.tflite"
    proc = run_cli("convert", FIXTURES / "digits_rgb.keras", "--precision", "fp32", "--labels", ",".join(LABELS), "--output", out, "--no-layers")
    assert proc.returncode == 0, proc.stderr
    return out


def test_mediapipe_tasks_reads_the_metadata_edgecnn_writes_and_answers_alike(digits_rgb, tmp_path):
    import cv2

    from edgecnn.core import tflite_file
    from edgecnn.device.runtime import Model

    ref = json.loads((FIXTURES / "mediapipe_classifier.json").read_text())
    meta = tflite_file.parse(digits_rgb.read_bytes()).metadata["TFLITE_METADATA"]
    # the very metadata MediaPipe was shown (a change to the writer must be shown to MediaPipe again)
    assert hashlib.sha256(meta).hexdigest() == ref["metadata_sha256"]
    model = Model(digits_rgb)
    folder = write_digit_images(tmp_path / "digits")
    for name, theirs in ref["answers"].items():
        ours = model.classify(cv2.imread(str(folder / name)), 3)
        assert ours[0][0] == theirs[0][0], (name, ours, theirs)  # the same top label, from the packed label file
        assert abs(ours[0][1] - theirs[0][1]) < 0.01, (name, ours, theirs)  # the same normalisation


def test_what_edgecnn_writes_its_own_reader_reads_back(digits_rgb):
    from edgecnn.core import tflite_file, tflite_metadata
    from edgecnn.device.runtime import Model

    data = digits_rgb.read_bytes()
    meta = tflite_metadata.parse(tflite_file.parse(data).metadata["TFLITE_METADATA"], data)
    spec = Model(digits_rgb).preprocess
    assert meta.input.color == "rgb" and meta.labels == LABELS
    # the Task Library's (p - mean) / std on raw pixels is edgecnn's (p * scale - mean) / std
    x = np.float32(200.0)
    assert np.allclose((x - np.float32(meta.input.mean[0])) / np.float32(meta.input.std[0]), (x * spec.scale - spec.mean[0]) / spec.std[0])
    assert meta.input.min == [0.0] and meta.input.max == [1.0]
