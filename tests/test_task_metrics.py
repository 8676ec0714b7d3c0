"""The metric each task needs, after decoding, on other people's models: MediaPipe's detectors judged
by the boxes they find, its segmenter by its mask, an embedder by its accept/reject decisions. Two
different models of the same family disagree, and the figures say by how much, with the count they
stand on."""

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import FACES

MODULES = Path(os.environ.get("EDGECNN_CORPUS", "/nonexistent")) / "mediapipe" / "modules"


def _corpus(rel: str) -> Path:
    path = MODULES / rel
    if not path.is_file():
        pytest.skip(f"{path.name} is not here: run .ci/fetch-corpus")
    return path


@pytest.fixture(scope="module")
def photos():
    import cv2

    return [cv2.imread(str(p)) for p in sorted(FACES.glob("*.jpg"))]


def test_a_detector_is_judged_by_its_boxes_and_a_segmenter_by_its_mask(photos):
    from edgecnn.converters.task_metrics import decoded_agreement, decoded_task

    short = _corpus("face_detection/face_detection_short_range.tflite")
    assert decoded_task(short) == "detection" and decoded_task(_corpus("selfie_segmentation/selfie_segmentation.tflite")) == "segmentation"
    same = decoded_agreement("detection", short, short, photos)
    assert same["boxes_fp32"] == same["boxes_quantized"] == len(photos)  # one face a photo
    assert same["box_agreement"] == 1.0 and same["box_agreement_samples"] == len(photos)
    assert same["box_agreement_ci95"][0] < 0.6  # 4 of 4 is weak evidence, and the interval says so
    # two palm detectors (lite and full) on faces: what one finds the other mostly does not
    lite, full = _corpus("palm_detection/palm_detection_lite.tflite"), _corpus("palm_detection/palm_detection_full.tflite")
    diff = decoded_agreement("detection", lite, full, photos)
    m = round(diff["box_recall"] * diff["boxes_fp32"])
    assert m == round(diff["box_precision"] * diff["boxes_quantized"])  # the same matches, counted from either side
    assert diff["box_agreement"] == pytest.approx(m / (diff["boxes_fp32"] + diff["boxes_quantized"] - m))
    assert diff["box_agreement"] < 0.5
    seg = _corpus("selfie_segmentation/selfie_segmentation.tflite")
    masks = decoded_agreement("segmentation", seg, seg, photos)
    assert masks["mask_iou"] == 1.0 and masks["images"] == len(photos)


def test_no_model_that_is_not_decoded_is_called_a_detector():
    from helpers import carried_model

    from edgecnn.converters.task_metrics import decoded_task

    assert decoded_task(carried_model("efficientnet_lite0.tflite")) is None  # a classifier: top-1 decides


def test_an_embedder_is_judged_by_its_decisions_on_disjoint_pairs():
    from edgecnn.converters.task_metrics import decision_agreement

    rng = np.random.default_rng(0)
    ref = [rng.normal(size=32) for _ in range(200)]
    assert decision_agreement(ref, ref)["decision_agreement"] == 1.0
    noisy = [r + rng.normal(0, 0.3, 32) for r in ref]
    got = decision_agreement(ref, noisy)
    assert got["decision_agreement_samples"] == 100  # 200 inputs make 100 independent pairs
    lo, hi = got["decision_agreement_ci95"]
    assert 0.5 < got["decision_agreement"] < 1.0 and lo < got["decision_agreement"] < hi
    assert decision_agreement(ref, noisy, threshold=1e9)["decision_agreement"] == 1.0  # everything accepted by both


def test_the_verdict_counts_what_the_metric_stands_on():
    from edgecnn.converters.verdict import decide

    boxes = {
        "samples": 200,
        "box_agreement": 1.0,
        "box_agreement_ci95": [1.0, 1.0],
        "box_agreement_samples": 0,
        "note": "neither model found anything",
        "cosine_mean": 0.999,
    }
    v = decide("detection", "int8", boxes)
    assert v["verdict"] == "undecided" and "found anything" in v["reason"]  # 200 images with no box prove nothing
    boxes.update(box_agreement=0.9, box_agreement_ci95=[0.85, 0.94], box_agreement_samples=300)
    v = decide("detection", "int8", boxes)
    assert v["verdict"] == "do not deploy" and "300 boxes" in v["reason"]
    assert decide("detection", "int8", {"samples": 50, "cosine_mean": 0.999, "cosine_mean_ci95": [0.998, 1.0]})["metric"] == "cosine_mean"
