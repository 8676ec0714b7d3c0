"""Issue proof: the real FaceNet graph converts; fp16 and dynamic range keep its embeddings and decisions."""

import itertools

import numpy as np
import pytest

from edgecnn.core import tflite_file
from edgecnn.device.faces import Embedder, FaceVerifier, distance

pytestmark = [pytest.mark.slow, pytest.mark.tf]

SAME = [("obama", "obama2"), ("obama", "obama3"), ("obama2", "obama3")]


def _embeddings(path, images):
    v = FaceVerifier(Embedder(path))
    return {k: v.embed(im, k).vector for k, im in images.items()}


def _pairs(E):
    same = [distance(E[a], E[b]) for a, b in SAME]
    diff = [distance(E[a], E[b]) for a, b in itertools.combinations(E, 2) if (a, b) not in SAME]
    return same, diff


def test_facenet_converts_with_whitening_metadata(facenet_models):
    path, rep = facenet_models["fp16"]
    meta = tflite_file.read_metadata(path)
    assert meta["name"] == "facenet" and meta["task"] == "embedding"
    assert meta["preprocess"]["normalize"] == "whiten" and meta["preprocess"]["color"] == "rgb"
    assert rep["input"]["shape"] == [1, 160, 160, 3]
    assert rep["size_ratio"] < 0.55
    assert rep["accuracy"]["cosine_mean"] >= 0.99  # on held-out real faces (scikit-image lfw_subset)


def test_fp16_and_dynamic_keep_embeddings_and_order(facenet_models, face_images):
    ref = _embeddings(facenet_models["fp32"][0], face_images)
    same, diff = _pairs(ref)
    assert max(same) < min(diff), (same, diff)  # the float model tells the people apart
    for precision in ("fp16", "dynamic"):
        E = _embeddings(facenet_models[precision][0], face_images)
        cos = [float(np.dot(E[k], ref[k])) for k in ref]
        assert min(cos) >= 0.98, (precision, cos)
        s, d = _pairs(E)
        assert max(s) < min(d), (precision, s, d)


def test_coral_prediction_counts_weights_beyond_on_chip_memory(facenet_models):
    """FaceNet int8 (23 MB of weights) on the Edge TPU: about 15 MB stream over USB on every inference,
    and the estimate carries that cost instead of a bare MAC count."""
    from edgecnn.device.profiling import predict_latency
    from edgecnn.targets import load_target
    from edgecnn.targets.predict import predict_ms, summary

    path, _ = facenet_models["int8"]
    p = predict_latency(path, "coral")
    mem = p["edgetpu_check"]["parameter_memory"]
    assert not mem["fits_on_chip"] and mem["parameter_bytes"] > 20e6 and mem["streamed_bytes"] == mem["parameter_bytes"] - 8_000_000
    bare = predict_ms(summary(load_target("coral")), p["macs"], "int8", 1)
    assert p["estimate_ms"] == pytest.approx(bare + mem["stream_ms_per_inference"], abs=1e-3)
    assert mem["stream_ms_per_inference"] > 40 and "8 MB on-chip memory" in p["streaming"]
