"""Training on real/generated data: the YOLO grid detector (mAP, int8, camera) and the siamese embedder."""

import json

import cv2
import numpy as np
import pytest
from helpers import assert_one_line_error, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.tf]


@pytest.fixture(scope="module")
def yolo_trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("yolo")
    out = folder / "shapes.keras"
    proc = run_cli("train", "yolo", "--output", out, "--json", timeout=1200)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_yolo_float_map_at_least_0_8(yolo_trained):
    out, rep = yolo_trained
    assert rep["map50"] >= 0.8, rep
    assert rep["grid"] == 3 and len(rep["anchors"]) == 3 and rep["labels"] == ["circle", "square", "triangle"]
    side = json.loads(out.with_name("shapes.edgecnn.json").read_text())
    assert side["task"] == "detection" and side["anchors"] == rep["anchors"]


def test_yolo_int8_within_two_points_and_runs_in_camera(yolo_trained, tmp_path):
    from edgecnn.core.detection import decode_yolo
    from edgecnn.core.metrics import mean_average_precision
    from edgecnn.device.runtime import Model
    from edgecnn.models.train.yolo import make_shapes_dataset

    keras_path, rep = yolo_trained
    calib = tmp_path / "calib"
    calib.mkdir()
    imgs, _ = make_shapes_dataset(200, 96, seed=7)
    for i, im in enumerate(imgs):
        cv2.imwrite(str(calib / f"{i:03d}.png"), im)
    model_path = tmp_path / "shapes_int8.tflite"
    proc = run_cli("convert", keras_path, "--precision", "int8", "--calibration", calib, "--output", model_path, "--json", "--no-layers")
    assert proc.returncode == 0, proc.stderr
    conv = json.loads(proc.stdout)
    assert conv["task"] == "detection" and conv["float_tensors"] <= 2
    # judged by its boxes, decoded as the camera loop decodes them, against the fp32 file's
    acc, v = conv["accuracy"], conv["verdict"]
    assert v["metric"] == "box_agreement" and v["samples"] == acc["box_agreement_samples"] >= 50, (v, acc)
    assert acc["box_recall"] >= 0.8 and acc["box_precision"] >= 0.8, acc
    assert v["verdict"] == ("deploy" if acc["box_agreement_ci95"][0] >= 0.95 else "do not deploy" if acc["box_agreement_ci95"][1] < 0.95 else "undecided")
    m = Model(model_path)
    assert m.metadata["anchors"] == rep["anchors"] and m.labels == rep["labels"]
    vimgs, vboxes = make_shapes_dataset(300, 96, seed=1000)  # the same held-out scenes as training's report
    dets = [decode_yolo(m.predict(im), m.metadata["anchors"], score_threshold=0.05) for im in vimgs]
    q = mean_average_precision(dets, vboxes, 3)["map"]
    assert q >= rep["map50"] - 0.02, (q, rep["map50"])

    # the int8 detector in the camera loop, on a clip of generated scenes
    clip = tmp_path / "scenes.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (192, 192))
    for im in vimgs[:30]:
        w.write(cv2.resize(im, (192, 192), interpolation=cv2.INTER_NEAREST))
    w.release()
    proc = run_cli("camera", "--source", clip, "--detector", model_path, "--headless", "--json", "--keep-per-frame")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["frames"] == 30 and s["frames_with_detections"] >= 25
    names = {d.get("name") for f in s["per_frame"] for d in f}
    assert names <= {"circle", "square", "triangle"} and names


@pytest.fixture(scope="module")
def siamese_trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("siamese") / "siamese.keras"
    proc = run_cli("train", "siamese", "--data", "bundled:digits", "--output", out, "--json", "--epochs", "30")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_siamese_one_shot_verification_on_unseen_digits(siamese_trained, tmp_path):
    """Triplet training on digits 0-6; verification measured on 7, 8, 9, never seen in training."""
    out, rep = siamese_trained
    assert rep["heldout_identities"] == ["7", "8", "9"] and rep["train_identities"] == [str(i) for i in range(7)]
    assert rep["roc_auc"] >= 0.75 and rep["eer"] <= 0.32, rep
    # the trained embedder converts like any other model, with its threshold-ready metadata
    conv = run_cli(
        "convert", out, "--precision", "int8", "--calibration", "bundled:digits", "--samples", "100", "--output", tmp_path / "s.tflite", "--json", "--no-layers"
    )
    assert conv.returncode == 0, conv.stderr
    assert json.loads(conv.stdout)["accuracy"]["cosine_mean"] > 0.95


@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-11-25: the untrained network (same seed, same init) separates the unseen "
    "digits 7-9 with ROC AUC 0.83; after 30 epochs of batch-hard triplet training on 0-6 it is 0.78. The trainer "
    "overfits the seen identities; until it beats its own start, this test records the defect",
)
def test_siamese_training_beats_its_initialisation_on_unseen_digits(siamese_trained):
    import keras

    from edgecnn import models
    from edgecnn.calibration.datasets import bundled
    from edgecnn.core.metrics import roc
    from edgecnn.core.preprocess import PreprocessSpec

    _, rep = siamese_trained
    keras.utils.set_random_seed(0)  # the network the trainer started from
    raw = models.build("siamese", input_shape=(32, 32, 1), backbone="lenet5", embedding_dim=32, backbone_options={"classic": False})
    data = bundled("digits", None)
    spec = PreprocessSpec.from_dict(rep["preprocess"])
    y = np.asarray(data.labels)
    te = y >= 7
    e = raw.predict(spec.apply_batch([im for im, t in zip(data.images, te) if t]), verbose=0)
    iu = np.triu_indices(len(e), 1)
    d = np.linalg.norm(e[iu[0]] - e[iu[1]], axis=1)
    same = y[te][iu[0]] == y[te][iu[1]]
    untrained = roc(d[same], d[~same])["auc"]
    assert rep["roc_auc"] > untrained + 0.02, (untrained, rep["roc_auc"])


def test_train_bad_input(tmp_path):
    assert_one_line_error(run_cli("train", "siamese", "--output", tmp_path / "s.keras"), 2, "--data")
    assert_one_line_error(run_cli("train", "siamese", "--data", tmp_path / "nope", "--output", tmp_path / "s.keras"), 2, "not a folder")
    (tmp_path / "one" / "a").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "one" / "a" / "x.png"), np.zeros((32, 32, 3), np.uint8))
    assert_one_line_error(run_cli("train", "siamese", "--data", tmp_path / "one", "--output", tmp_path / "s.keras"), 2, "identities")
    assert_one_line_error(run_cli("train", "yolo", "--output", tmp_path / "y.h5"), 2, ".keras")
