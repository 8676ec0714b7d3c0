"""Small defects a newcomer met, each with the behaviour that fixes it."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from helpers import carried_model, run_cli

pytestmark = [pytest.mark.device]


def test_a_target_with_delegate_none_runs_the_plain_kernels_not_xnnpack():
    from edgecnn.device.runtime import Model
    from edgecnn.targets.profile import load_target

    path = carried_model("efficientnet_lite0.tflite")
    plain = dataclasses.replace(load_target("cpu"), delegate="none", name="plain")
    ops = [{o["op_name"] for o in Model(path, target=t, threads=1).interpreter._get_ops_details()} for t in ("cpu", plain)]
    assert "DELEGATE" in ops[0] and "DELEGATE" not in ops[1]  # XNNPACK claims the graph only where asked
    m = Model(path, target=plain, threads=1)
    assert m.describe()["delegate"] == "cpu"
    frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8)
    assert np.abs(m.predict(frame) - Model(path, threads=1).predict(frame)).max() < 0.02


def test_a_gallery_path_with_a_hash_bundles(tmp_path):
    from edgecnn.device.gallery import Gallery

    folder = tmp_path / "team #1"
    folder.mkdir()
    g = Gallery(folder / "g?allery#.db")
    g.enroll("alice", [np.ones(128, np.float32) / np.sqrt(128)], "test-embedder")
    g.close()
    proc = run_cli(
        "bundle",
        "--target",
        "cpu",
        "--no-embedder",
        "--gallery",
        folder / "g?allery#.db",
        "--output",
        tmp_path / "b",
        env={"EDGECNN_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 0, proc.stderr
    assert Gallery(tmp_path / "b" / "gallery.db", create=False, readonly=True).names() == ["alice"]


def test_output_piped_to_a_script_never_breaks_a_line_in_two(tmp_path):
    """Without a terminal, a line longer than the console (a gallery deep in a folder tree) stays one line."""
    from edgecnn.device.gallery import Gallery

    folder = tmp_path / ("a_folder_with_a_long_name_" * 8)
    folder.mkdir()
    g = Gallery(folder / "g.db")
    g.enroll("alice", [np.ones(128, np.float32) / np.sqrt(128)], "test-embedder")
    g.close()
    proc = run_cli("gallery", "list", "--gallery", folder / "g.db")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and str(folder / "g.db") in lines[0] and lines[1].strip().startswith("alice"), lines


def test_from_edgecnn_import_model_in_a_fresh_interpreter():
    code = "import edgecnn, sys; assert 'edgecnn.device.runtime' not in sys.modules; from edgecnn import Model; print(Model.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "edgecnn.device.runtime", out.stderr


def test_a_targets_latency_fit_is_made_once_per_set_of_references(tmp_path, monkeypatch):
    from edgecnn.targets import predict
    from edgecnn.targets.profile import load_target

    monkeypatch.setenv("EDGECNN_HOME", str(tmp_path))
    first = predict.summary(load_target("rpi5"))
    monkeypatch.setattr(predict, "fit", lambda refs: pytest.fail("refitted"))
    assert predict.summary(load_target("rpi5")) == first
    changed = dataclasses.replace(load_target("rpi5"), predict={"reference": [dict(r, ms=float(r["ms"]) * 2) for r in first["references"]]})
    with pytest.raises(pytest.fail.Exception, match="refitted"):  # other references: fitted anew
        predict.summary(changed)


def test_a_builder_option_the_model_lacks_is_refused_without_tensorflow():
    from helpers import run_without_tf

    code = """
    from edgecnn.cli import main
    import sys
    sys.exit(main(sys.argv[1:]))
    """
    for cmd in ("inspect", "convert"):
        proc = run_without_tf(code, cmd, "lenet5", "--alpha", "2")
        assert proc.returncode == 2 and "has no option 'alpha'" in proc.stderr and "valid options: classes" in proc.stderr, proc.stderr


def test_a_classifiers_label_is_drawn_below_the_status_line_where_it_can_be_read():
    from edgecnn.core.detection import Detection
    from edgecnn.device.overlay import STATUS_HEIGHT, Hud, draw

    frame = np.zeros((240, 320, 3), np.uint8)
    hud = Hud()
    draw(frame.copy(), [], 99.9, 999.9, hud=hud)
    assert hud.strip.shape[0] <= STATUS_HEIGHT
    bare = draw(frame.copy(), [], 30.0, 5.0)
    labelled = draw(frame.copy(), [Detection((0.0, 0.0, 320.0, 240.0), 0.93, 3, [], "tabby")], 30.0, 5.0)
    changed = np.argwhere((labelled != bare).any(2))
    label = changed[(changed[:, 0] >= STATUS_HEIGHT) & (changed[:, 0] < STATUS_HEIGHT + 30) & (changed[:, 1] < 120)]
    assert len(label) > 100  # the label band, whole, under the strip


def test_a_bundle_is_read_and_each_of_its_files_hashed_once_per_process(tmp_path, monkeypatch):
    """Opening a bundle, resolving its detector and loading it (the loader's verdict cache is keyed by
    sha256 too) hashed the same file again at each step: a 23 MB FaceNet three times per start."""
    from edgecnn.device import loader
    from edgecnn.device.bundle import open_bundle
    from edgecnn.workstation import bundler

    monkeypatch.setenv("EDGECNN_HOME", str(tmp_path / "home"))
    out = tmp_path / "b"
    bundler.make_bundle("cpu", out, with_embedder=False, with_gallery=False)
    hashed = []
    real = loader.sha256_of
    monkeypatch.setattr(loader, "sha256_of", lambda data: hashed.append(len(data)) or real(data))
    first = open_bundle(out)
    detector = first.role("detector")
    assert open_bundle(out) is first and open_bundle(out).role("detector") == detector
    loader.check_model(detector)
    assert hashed == [detector.stat().st_size]  # once: the bundle's check, reused by the loader
    bundler.make_bundle("rpi5", out, with_embedder=False, with_gallery=False, force=True)
    again = open_bundle(out)
    assert again is not first and again.target == "rpi5"  # a replaced bundle is read anew
