"""Faults a device meets: kills at any moment during a replacement, a gallery's stale write-ahead log,
hostile names. Nothing lost, one line each."""

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FACES, assert_one_line_error, commit_then_die, gallery_with, run_cli

pytestmark = [pytest.mark.device]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _bundle(out: Path, target: str, home: Path, *extra) -> subprocess.CompletedProcess:
    return run_cli("bundle", "--target", target, "--no-embedder", "--output", out, *extra, env={"EDGECNN_HOME": str(home)})


def _whole(out: Path) -> str:
    """The target of the bundle at ``out``, after checking every file against its manifest."""
    from edgecnn.device.bundle import open_bundle

    b = open_bundle(out)
    for name in b.manifest["files"]:
        b.file(name)
    return b.target


def test_a_replacement_cut_between_its_renames_is_undone_by_the_next_reader(tmp_path):
    from edgecnn.device.bundle import recover

    out = tmp_path / "b"
    assert _bundle(out, "cpu", tmp_path / "home").returncode == 0
    moved = tmp_path / f".b.{_dead_pid()}.old"
    os.rename(out, moved)  # what a SIGKILL between the two renames leaves
    stale = tmp_path / f".b.{_dead_pid()}.abc123.partial"
    stale.mkdir()
    (stale / "face_detection_short_range.tflite").write_bytes(b"x" * 1000)
    mine = tmp_path / ".b.notes"  # not our pattern: never touched
    mine.write_text("keep")
    assert _whole(out) == "cpu"  # the device's reader puts the old bundle back, and clears the dead run's staging
    assert recover(out) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == [".b.notes", "b"]
    live = tmp_path / f".b.{os.getpid()}.xyz.partial"  # a run in progress (this process): left alone
    live.mkdir()
    assert recover(out) == [] and live.is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_forced_bundle_killed_at_any_moment_is_always_whole(tmp_path, sig):
    """``bundle --force`` killed at 50 moments spread over its run (100 with both signals): the folder always holds the old
    bundle or the new one, every file matching its manifest; the user's own file survives; after the
    next run nothing of the killed ones is left beside it."""
    home = tmp_path / "home"
    out = tmp_path / "b"
    assert _bundle(out, "cpu", home).returncode == 0
    (out / "my_notes.txt").write_text("mine")
    t0 = time.perf_counter()
    assert _bundle(out, "rpi5", home, "--force").returncode == 0
    span = time.perf_counter() - t0
    rng = random.Random(int(sig))
    seen = {"cpu": 0, "rpi5": 0}
    env = {**os.environ, "EDGECNN_HOME": str(home)}
    for i in range(50):
        target = ("cpu", "rpi5")[i % 2]
        p = subprocess.Popen(
            [sys.executable, "-m", "edgecnn.cli", "bundle", "--target", target, "--no-embedder", "--output", str(out), "--force"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        time.sleep(rng.uniform(0.3, 1.1) * span)
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        assert p.returncode in (0, -sig, 128 + sig), err
        if sig == signal.SIGTERM and p.returncode != 0:
            assert err.count("\n") <= 1 and "Traceback" not in err
        seen[_whole(out)] += 1
        assert (out / "my_notes.txt").read_text() == "mine"
    assert seen["cpu"] and seen["rpi5"]
    assert _bundle(out, "cpu", home, "--force").returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["b"]


def test_a_replaced_gallery_never_meets_the_old_ones_write_ahead_log(tmp_path):
    """An enrolment killed after committing leaves the bundle's gallery with a -wal; ``bundle --force``
    with another gallery must not let SQLite replay that log into the new file (it made it malformed, or
    brought the old people back)."""
    home = tmp_path / "home"
    old_gallery, new_gallery = tmp_path / "old.db", tmp_path / "new.db"
    gallery_with(old_gallery, ["alice", "bob"], 1)
    gallery_with(new_gallery, ["carol"], 2)
    out = tmp_path / "b"
    assert _bundle(out, "cpu", home, "--gallery", old_gallery).returncode == 0
    commit_then_die(out / "gallery.db", "mallory")  # a committed enrolment waits in the log
    assert _bundle(out, "cpu", home, "--gallery", new_gallery, "--force").returncode == 0
    db = sqlite3.connect(str(out / "gallery.db"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [r[0] for r in db.execute("SELECT name FROM identities ORDER BY name")] == ["carol"]
    db.close()
    assert json.loads((out / "manifest.json").read_text())["gallery"] == "gallery.db"


def test_empty_files_and_folders_given_as_images_are_one_line(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for args, needle in (
        (("enroll", "bob", empty), "empty (0 bytes)"),
        (("verify", empty, empty), "empty (0 bytes)"),
        (("identify", empty), "empty (0 bytes)"),
        (("enroll", "bob", tmp_path), "is a folder"),
    ):
        proc = run_cli(*args, "--gallery", tmp_path / "g.db")
        assert proc.returncode == 2 and needle in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert not (tmp_path / "g.db").exists()


@pytest.mark.slow
def test_empty_or_foreign_files_are_one_line_in_bundle_camera_and_convert(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    (tmp_path / "empty.keras").write_bytes(b"")
    (tmp_path / "text.h5").write_text("not hdf5")
    for args, needle in (
        (("bundle", "--target", "cpu", "--output", tmp_path / "b", "--enroll", f"bob={empty}"), "empty (0 bytes)"),
        (("camera", "--source", FACES / "obama.jpg", "--style", empty, "--headless"), "empty (0 bytes)"),
        (("convert", tmp_path / "empty.keras"), "is not a .keras file: it is empty"),  # Keras said "File not found"
        (("convert", tmp_path / "text.h5"), "is not a Keras HDF5 file: no HDF5 signature"),
    ):
        assert_one_line_error(run_cli(*args), 2, needle)
    assert not (tmp_path / "b").exists()


def test_a_detector_or_a_classifier_is_refused_as_an_embedder(tmp_path):
    from helpers import carried_model

    from edgecnn.device.detectors import find_model_file

    photo = FACES / "obama.jpg"
    for model, needle in ((find_model_file("blazeface"), "not one vector"), (carried_model("efficientnet_lite0.tflite"), "classifier")):
        proc = run_cli("enroll", "bob", photo, "--embedder", model, "--gallery", tmp_path / "g.db")
        assert proc.returncode == 2 and "is not a face-embedding model" in proc.stderr and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "g.db").exists()


SWALLOWED = r"""
import os, signal, sys, time
import edgecnn.cli.profile as prof
from edgecnn.core.files import atomic_write

class Finaliser:  # what TensorFlow's AtomicFunction.__del__ does to a signal: runs it, and loses its exception
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM if sys.argv[2] == "term" else signal.SIGINT)
        time.sleep(0.2)

def run(args, extra):
    Finaliser()
    print("work went on", file=sys.stderr)
    atomic_write(sys.argv[1], b"new")
    return 0

prof.run_profile = run
from edgecnn.cli import main
sys.exit(main(["profile", "x.tflite"]))
"""


@pytest.mark.parametrize("sig, code", [("term", 143), ("int", 130)])
def test_a_signal_lost_inside_a_finaliser_still_stops_before_any_output_is_replaced(tmp_path, sig, code, sigint_reaches_python):
    out = tmp_path / "model.tflite"
    out.write_bytes(b"old")
    p = subprocess.run([sys.executable, "-c", SWALLOWED, str(out), sig], capture_output=True, text=True, timeout=60)
    assert "work went on" in p.stderr  # the library did swallow it: the work went on past the signal
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr  # and it is not printed as noise
    assert p.returncode == code, p.stderr
    assert out.read_bytes() == b"old" and [q.name for q in tmp_path.iterdir()] == ["model.tflite"]


@pytest.mark.slow
@pytest.mark.tf
def test_convert_stopped_at_any_moment_keeps_the_old_model_or_writes_the_new_one_whole(tmp_path, sigint_reaches_python):
    """SIGTERM or SIGINT at six random moments of an int8 conversion over an existing model: the exit code
    of the signal, the old file or a whole new one (never a third state), no partial file, no temp left."""
    from edgecnn.core import tflite_file

    out, tmp = tmp_path / "m.tflite", tmp_path / "tmp"
    tmp.mkdir()
    assert run_cli("convert", "lenet5", "--samples", "8", "--output", out).returncode == 0
    old = out.read_bytes()
    rnd, outcomes = random.Random(11), []
    for _ in range(6):
        sig = rnd.choice([signal.SIGTERM, signal.SIGINT])
        p = subprocess.Popen(
            [sys.executable, "-m", "edgecnn.cli", "convert", "lenet5", "--precision", "int8", "--samples", "8", "--output", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TMPDIR": str(tmp)},
        )
        time.sleep(rnd.uniform(0.3, 10.0))
        if p.poll() is not None:  # finished first: nothing was interrupted
            p.communicate()
            continue
        p.send_signal(sig)
        out_text, err = p.communicate(timeout=120)
        data = out.read_bytes()
        if p.returncode == 0:  # the signal came once the model was written and said: the run ended as done
            assert "DEPLOY" in out_text and data != old and tflite_file.parse(data).tensors, err
            old = data
            continue
        assert p.returncode == (143 if sig == signal.SIGTERM else 130), err
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("edgecnn: note:")]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert data == old or tflite_file.parse(data).tensors, "neither the old model nor a whole new one"
        outcomes.append("old" if data == old else "new")
        old = data
        assert sorted(q.name for q in tmp_path.iterdir()) == ["m.tflite", "tmp"] and list(tmp.iterdir()) == []
    assert "old" in outcomes, outcomes  # the sweep reached the work, not only its end


@pytest.mark.slow
def test_a_ray_address_that_is_not_a_ray_head_is_one_line_not_a_hang(tmp_path):
    """A live port that is not Ray (a silent one, a web server): Ray's client retried for minutes."""
    pytest.importorskip("ray")
    import http.server
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts (the kernel does), never answers
    web = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        for port in (silent.getsockname()[1], web.server_address[1]):
            proc = run_cli("benchmark", "--models", "lenet5", "--output", tmp_path / f"o{port}", "--ray", f"127.0.0.1:{port}", timeout=60)
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            assert proc.returncode == 2 and len(lines) == 1 and "not a Ray head" in lines[0], proc.stderr
    finally:
        web.shutdown()
        silent.close()


@pytest.mark.slow
def test_a_stream_server_that_never_answers_is_one_line_in_seconds_not_a_minute():
    """FFmpeg's own open timeout is 30 s a try (twice: 60 s of silence before the first word)."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/stream.mjpg"
        # run_cli's timeout is the hang guard: the two 30 s tries it made before would pass it by
        proc = run_cli("camera", "--source", url, "--headless", "--max-frames", "3", timeout=55)
        assert_one_line_error(proc, 2, "no video from it within 10 s")
    finally:
        silent.close()


@pytest.mark.slow
def test_a_video_cut_short_by_a_full_disk_is_never_left_under_its_name(small_disk, tmp_path):
    from edgecnn.calibration.datasets import real_clip

    for ext in (".mp4", ".avi"):
        out = small_disk / f"out{ext}"
        proc = run_cli("camera", "--source", real_clip("bikes"), "--headless", "--json", "--output", out, "--max-frames", "120")
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 1 and "could not be written whole" in lines[-1] and "internal error" not in proc.stderr, proc.stderr
        assert list(small_disk.iterdir()) == []  # no unplayable video at the final name, no partial left


def test_a_read_only_output_folder_is_named_as_such_before_the_loop(read_only_folder, clip_for_faults):
    proc = run_cli("camera", "--source", clip_for_faults, "--headless", "--output", read_only_folder / "o.mp4")
    assert proc.returncode == 2 and "read-only or permission denied" in proc.stderr and "codec" not in proc.stderr, proc.stderr


@pytest.fixture
def clip_for_faults(tmp_path):
    from helpers import make_clip

    return make_clip(tmp_path / "c.mp4", frames=6)


def test_two_people_passing_each_other_never_share_one_name():
    """Two faces side by side, then crossing: each detection takes one track's history (it took the best
    track, shared: ['alice', 'alice'])."""
    from edgecnn.core.detection import Detection
    from edgecnn.device.overlay import LabelSmoother

    smoother = LabelSmoother()
    for step in range(40):
        a = 100 + 8 * step  # alice walks right, bob walks left, their boxes overlapping in the middle
        b = 420 - 8 * step
        dets = [Detection((a, 100, a + 120, 240), 0.9, name="alice"), Detection((b, 104, b + 120, 244), 0.9, name="bob")]
        labels = [d.name for d in smoother.update(dets)]
        assert sorted(labels) == ["alice", "bob"], (step, labels)
    smoother = LabelSmoother()  # bob steps up right beside alice: both boxes overlap her track best
    smoother.update([Detection((100, 100, 220, 240), 0.9, name="alice")])
    for _ in range(3):
        both = [Detection((100, 100, 220, 240), 0.9, name="alice"), Detection((112, 100, 232, 240), 0.9, name="bob")]
        assert [d.name for d in smoother.update(both)] == ["alice", "bob"]


@contextlib.contextmanager
def _remounted_read_only(mnt: Path, *files):
    """``files`` copied onto the tmpfs at ``mnt``, which is then read-only again."""
    subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
    for f in files:
        shutil.copy(f, mnt / Path(f).name)
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    yield mnt


@pytest.mark.slow
def test_outputs_on_a_read_only_medium_are_one_line_before_any_work(read_only_folder, tmp_path):
    from edgecnn.device.detectors import find_model_file

    model = find_model_file("blazeface")
    for args in (
        ("profile", model, "--save", read_only_folder / "r.json"),
        ("profile", model, "--plot", read_only_folder / "p.png"),
        ("convert", "lenet5", "--report", read_only_folder / "r.json"),
        ("benchmark", "--models", "lenet5", "--output", read_only_folder / "b"),
    ):
        proc = run_cli(*args)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and "read-only" in lines[0].lower(), (args, proc.stderr)
    gallery_with(tmp_path / "g.db", ["ann"], 3)
    (tmp_path / "e.json").write_text(json.dumps({"schema": 1, "embedder": "test-embedder", "identities": [{"name": "x", "embedding": [0.1] * 128}]}))
    with _remounted_read_only(read_only_folder, tmp_path / "g.db"):
        for args in (("gallery", "remove", "ann"), ("gallery", "import", tmp_path / "e.json"), ("enroll", "bob", FACES / "obama.jpg")):
            assert_one_line_error(run_cli(*args, "--gallery", read_only_folder / "g.db"), 2, "read-only")


def test_an_output_that_cannot_be_replaced_is_one_line_and_left_as_it_was(tmp_path):
    """An immutable file (chattr +i holds even for root) where a result goes: no internal error."""
    target = tmp_path / "r.json"
    target.write_text("old")
    if subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        from edgecnn.device.detectors import find_model_file

        proc = run_cli("profile", find_model_file("blazeface"), "--runs", "2", "--save", target)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("edgecnn: note:")]
        assert proc.returncode == 1 and len(lines) == 1 and "was left as it was" in lines[0], proc.stderr
        assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    finally:
        subprocess.run(["chattr", "-i", str(target)], capture_output=True)


def test_options_that_would_do_nothing_or_mean_nothing_are_refused(tmp_path):

    photo = FACES / "obama.jpg"
    for args, needle in (
        (("stylize", photo, "--style", "1", "--output", tmp_path / "s.jpg", "--save-every", "5"), "only applies with --optimize"),
        (("stylize", photo, "--style", "1", "--output", tmp_path / "s.jpg", "--optimize", "--beta", "nan"), "--beta"),
        (("stylize", photo, "--style", "1", "--output", tmp_path / "s.jpg", "--optimize", "--alpha", "-1"), "--alpha"),
        (("bundle", "--target", "cpu", "--output", tmp_path / "b", "--enroll", f"bob={photo}", "--no-gallery"), "--no-gallery"),
        (("convert", "lenet5", "--labels", tmp_path / "lables.txt"), "no such file"),
    ):
        assert_one_line_error(run_cli(*args), 2, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
