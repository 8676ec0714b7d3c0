"""Nothing lost, nothing crashes: every writing command refuses to write over its own inputs, bundles
never delete what they did not make, signals leave nothing half-written, the gallery survives
concurrency and read-only use, bad images and bad numbers are one-line errors."""

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import FACES, assert_one_line_error, make_clip, run_cli, run_cli_without_tf

from edgecnn.device.detectors import find_model_file


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "c.mp4", frames=12)


def _unchanged(path: Path):
    before = path.read_bytes()
    return lambda: path.read_bytes() == before


def test_no_command_writes_over_its_own_inputs(tmp_path, clip):
    model = tmp_path / "m.tflite"
    model.write_bytes(find_model_file("blazeface").read_bytes())
    photo = tmp_path / "face.jpg"
    photo.write_bytes((FACES / "obama.jpg").read_bytes())
    data = tmp_path / "ids" / "a"
    data.mkdir(parents=True)
    (data / "x.png").write_bytes(photo.read_bytes())
    checks = [_unchanged(p) for p in (model, clip, photo, data / "x.png")]
    cases = [
        (("profile", model, "--save", model), "--save"),
        (("profile", model, "--plot", model), "--plot"),
        (("camera", "--source", clip, "--output", clip, "--headless"), "would overwrite --source"),
        (("camera", "--source", clip, "--output", model, "--headless", "--detector", model), "would overwrite"),
        (("convert", "lenet5", "--calibration", clip, "--report", clip), "would overwrite --calibration"),
        (("convert", "lenet5", "--report", tmp_path / "r.json", "--html", tmp_path / "r.json"), "are the same file"),
        (("enroll", "obama", photo, "--gallery", photo), "would overwrite image"),
        (("train", "siamese", "--data", tmp_path / "ids", "--output", tmp_path / "s.keras", "--report", data / "x.png"), "would overwrite --data"),
    ]
    for args, needle in cases:
        assert_one_line_error(run_cli(*args), 2, needle)  # refused before any model is built or converted
    assert all(c() for c in checks)


def test_gallery_export_refuses_its_own_file_and_a_folder_and_import_restores(tmp_path):
    from edgecnn.device.gallery import Gallery

    g = Gallery(tmp_path / "g.db")
    g.enroll("ada", [np.ones(4, np.float32), np.arange(4, dtype=np.float32)], "toy:fp32:abc")
    g.set_threshold(0.7)
    g.close()
    same = _unchanged(tmp_path / "g.db")
    assert_one_line_error(run_cli("gallery", "export", tmp_path / "g.db", "--gallery", tmp_path / "g.db"), 2, "would overwrite --gallery")
    assert same()
    assert_one_line_error(run_cli("gallery", "export", tmp_path, "--gallery", tmp_path / "g.db"), 2, "folder")
    assert run_cli("gallery", "export", tmp_path / "e.json", "--gallery", tmp_path / "g.db").returncode == 0
    assert oct((tmp_path / "e.json").stat().st_mode & 0o777) == "0o644"
    proc = run_cli("gallery", "import", tmp_path / "e.json", "--gallery", tmp_path / "new.db", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["imported"] == 2
    a, b = Gallery(tmp_path / "g.db", readonly=True).export(), Gallery(tmp_path / "new.db", readonly=True).export()
    assert a == b and b["threshold"] == "0.7"
    assert oct((tmp_path / "new.db").stat().st_mode & 0o777) == "0o600"


def test_readonly_commands_never_touch_the_gallery_and_a_foreign_sqlite_is_left_alone(tmp_path):
    from edgecnn.device.gallery import Gallery

    g = Gallery(tmp_path / "g.db")
    g.enroll("ada", [np.ones(4, np.float32)], "toy:fp32:abc")
    g.close()
    for f in tmp_path.glob("g.db-*"):
        f.unlink()
    (tmp_path / "g.db").chmod(0o444)
    before = ((tmp_path / "g.db").read_bytes(), (tmp_path / "g.db").stat().st_mtime_ns)
    proc = run_cli("gallery", "list", "--gallery", tmp_path / "g.db", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)["identities"]] == ["ada"]
    assert ((tmp_path / "g.db").read_bytes(), (tmp_path / "g.db").stat().st_mtime_ns) == before
    assert oct((tmp_path / "g.db").stat().st_mode & 0o777) == "0o444"  # no chmod on open any more
    foreign = tmp_path / "other.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE notes (t TEXT)")
    db.execute("INSERT INTO notes VALUES ('mine')")
    db.commit()
    db.close()
    same = _unchanged(foreign)
    for args in (("gallery", "list", "--gallery", foreign), ("enroll", "x", FACES / "obama.jpg", "--gallery", foreign, "--embedder", tmp_path / "none.tflite")):
        assert_one_line_error(run_cli(*args), 2)
    assert_one_line_error(run_cli("gallery", "list", "--gallery", foreign), 2, "not an edgecnn gallery")
    assert same()


def _enrol_one(path, k, barrier):
    from edgecnn.device.gallery import Gallery

    barrier.wait()
    Gallery(path).enroll(f"person{k}", [np.full(8, k, np.float32)], "toy:fp32:abc")


def test_eight_concurrent_enrolments_into_a_new_gallery_all_land(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_enrol_one, args=(str(tmp_path / "g.db"), k, barrier)) for k in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 8
    from edgecnn.device.gallery import Gallery

    assert sorted(Gallery(tmp_path / "g.db", readonly=True).names()) == [f"person{k}" for k in range(8)]


def test_truncated_and_corrupt_images_are_exit_2(tmp_path):
    from edgecnn.device.faces import read_image

    data = (FACES / "obama.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(Exception, match="truncated JPEG"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(Exception, match="corrupt"):
        read_image(tmp_path / "junk.png")
    assert read_image(FACES / "obama.jpg").shape[2] == 3


def test_bundle_never_deletes_what_it_did_not_make(tmp_path):
    home = {"EDGECNN_HOME": str(tmp_path / "home")}  # no user gallery to pick up
    work = tmp_path / "project"
    (work / ".git").mkdir(parents=True)
    (work / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (work / "manifest.json").write_text('{"mine": true}')
    sibling = tmp_path / "project.partial"
    sibling.mkdir()
    (sibling / "notes.txt").write_text("keep me")
    err = assert_one_line_error(run_cli("bundle", "--target", "cpu", "--no-embedder", "--output", work, env=home), 2, "not empty")
    assert "--force" in err
    assert_one_line_error(run_cli("bundle", "--target", "cpu", "--no-embedder", "--output", work, "--force", env=home), 2, "no edgecnn bundle")
    assert (work / ".git" / "HEAD").exists() and json.loads((work / "manifest.json").read_text()) == {"mine": True}
    assert (sibling / "notes.txt").read_text() == "keep me"
    out = tmp_path / "b"
    assert run_cli("bundle", "--target", "cpu", "--no-embedder", "--output", out, env=home).returncode == 0
    (out / "my_notes.txt").write_text("mine")
    assert_one_line_error(run_cli("bundle", "--target", "rpi5", "--no-embedder", "--output", out, env=home), 2, "not empty")
    proc = run_cli("bundle", "--target", "rpi5", "--no-embedder", "--output", out, "--force", env=home)
    assert proc.returncode == 0, proc.stderr
    assert (out / "my_notes.txt").read_text() == "mine" and json.loads((out / "manifest.json").read_text())["target"] == "rpi5"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial") and p != sibling]  # staging never left behind
    assert {oct(p.stat().st_mode & 0o777) for p in out.glob("*.tflite")} == {"0o644"}


def test_a_tampered_bundle_is_exit_2_naming_the_file(tmp_path, clip):
    home = {"EDGECNN_HOME": str(tmp_path / "home")}
    out = tmp_path / "b"
    assert run_cli("bundle", "--target", "cpu", "--no-embedder", "--output", out, env=home).returncode == 0
    det = out / "face_detection_short_range.tflite"
    data = bytearray(det.read_bytes())
    data[len(data) // 2] ^= 0xFF
    det.write_bytes(bytes(data))
    assert_one_line_error(run_cli("camera", "--bundle", out, "--source", clip, "--headless", env=home), 2, "face_detection_short_range.tflite does not match")
    m = json.loads((out / "manifest.json").read_text())
    m["detector"] = "../../etc/passwd"
    (out / "manifest.json").write_text(json.dumps(m))
    assert_one_line_error(run_cli("camera", "--bundle", out, "--source", clip, "--headless", env=home), 2, "outside the bundle")
    assert_one_line_error(run_cli("camera", "--bundle", out, "--source", clip, "--headless", "--verify", env=home), 2)


def test_calibration_memory_follows_the_input_size_not_the_photos(tmp_path):
    big = tmp_path / "photos"
    big.mkdir()
    # 24 12-megapixel photos (36 MB each decoded): one smooth picture encoded once, written 24 times
    photo = np.broadcast_to(np.linspace(0, 255, 4000).astype(np.uint8)[None, :, None], (3000, 4000, 3))
    jpeg = cv2.imencode(".jpg", np.ascontiguousarray(photo), [cv2.IMWRITE_JPEG_QUALITY, 30])[1].tobytes()
    for i in range(24):
        (big / f"{i}.jpg").write_bytes(jpeg)
    code = (
        "import resource, sys; from edgecnn.calibration.datasets import load_images;"
        "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        "s = load_images(sys.argv[1], 24, min_side=448);"
        "print(len(s.images), max(min(i.shape[:2]) for i in s.images), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) // 1024)"
    )
    n, side, grew_mb = map(int, subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, check=True).stdout.split())
    assert n == 24 and side == 448
    assert grew_mb < 150, grew_mb  # kept at full size they would take 24 x 36 MB = 864 MB


@pytest.mark.slow
@pytest.mark.tf
def test_sigterm_mid_convert_leaves_nothing_behind(tmp_path, clip):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgecnn.cli",
            "convert",
            "mobilenet_v2",
            "--alpha",
            "0.35",
            "--input-size",
            "96",
            "--precision",
            "int8",
            "--calibration",
            str(clip),
            "--samples",
            "8",
            "--output",
            str(out / "m.tflite"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp), "EDGECNN_PROGRESS": "1"},
    )
    lines = []
    while (line := p.stderr.readline()) and "measuring against the float model" not in line:
        lines.append(line)
    assert line, "".join(lines)  # the stage line came: converted models exist, temp files are in use
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert "terminated" in err and len(err.strip().splitlines()) == 1
    assert list(out.iterdir()) == []  # no model, no hidden .part or evaluation copies
    assert list(tmp.iterdir()) == []  # the SavedModel export folder went too


@pytest.mark.slow
@pytest.mark.tf
def test_sigterm_mid_bundle_leaves_no_staging_and_no_half_bundle(tmp_path):
    env = {**os.environ, "EDGECNN_HOME": str(tmp_path / "home"), "EDGECNN_PROGRESS": "1"}  # no cached FaceNet: the bundle converts it
    out = tmp_path / "b"
    p = subprocess.Popen(
        [sys.executable, "-m", "edgecnn.cli", "bundle", "--target", "cpu", "--output", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines = []
    while (line := p.stderr.readline()) and "FaceNet for cpu" not in line:
        lines.append(line)
    assert line, "".join(lines)  # the detectors are staged; FaceNet is converting
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert not out.exists() and [q.name for q in tmp_path.iterdir() if q.name != "home"] == []  # no staging folder left


def test_bad_numbers_are_one_line_and_instant():
    for args, needle in (
        (("verify", "a.jpg", "b.jpg", "--threshold", "-1"), "--threshold"),
        (("verify", "--calibrate", "d", "--far", "5"), "--far"),
        (("train", "yolo", "--epochs", "0"), "--epochs"),
        (("train", "yolo", "--images", "0"), "--images"),
        (("profile", "m.tflite", "--runs", "0"), "--runs"),
        (("convert", "mobilenet_v2", "--samples", "0"), "--samples"),
        (("inspect", "efficientnet", "--phi", "-2"), "--phi"),
        (("camera", "--threads", "0"), "--threads"),
    ):
        assert_one_line_error(run_cli_without_tf(*args), 2, needle)  # before TensorFlow loads


def test_an_unreachable_display_runs_headless_with_one_line(clip, tmp_path):
    proc = run_cli("camera", "--source", clip, "--json", env={"DISPLAY": ":97"})  # no X server there
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 12
    notes = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(notes) == 1 and "does not answer" in notes[0]
