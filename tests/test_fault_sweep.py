"""The adversarial sweep: every command that reads a file or writes one, given what a careless or hostile
user gives it (empty, truncated, foreign or missing files, folders for files, a damaged gallery, hostile
JSON, a read-only medium, a full disk, an output that is one of its inputs). Each case must end with a
non-zero exit and one line naming the problem, never an internal error or a hang, and leave every input
as it was and nothing half-made where an output would go."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import FACES, fill, gallery_with, make_clip, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.device]


@pytest.fixture
def kit(tmp_path, small_disk, read_only_folder):
    """Bad and good inputs side by side, a read-only medium and a full disk."""
    k = {"ro": read_only_folder, "full": small_disk, "dir": tmp_path / "dir"}
    k["dir"].mkdir()
    k["photo"] = Path(shutil.copy(FACES / "obama.jpg", tmp_path / "p.jpg"))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "trunc.jpg").write_bytes((FACES / "obama.jpg").read_bytes()[:3000])
    (tmp_path / "corrupt.db").write_bytes(os.urandom(8192))
    (tmp_path / "notes.txt").write_text("my notes")
    gallery_with(tmp_path / "g.db", ["ann", "bob"], 1)
    make_clip(tmp_path / "c.mp4", frames=6)
    from edgecnn.device.detectors import find_model_file

    model = Path(shutil.copy(find_model_file("blazeface"), tmp_path / "m.tflite"))
    (tmp_path / "bad.tflite").write_bytes(model.read_bytes()[:5000])
    for name, ids in {
        "intname": [{"name": 5, "embedding": [0.1] * 128}],
        "ansi": [{"name": "\x1b[2Jevil\nroot", "embedding": [0.1] * 128}],
        "shortvec": [{"name": "x", "embedding": [0.1] * 5}],
        "strvec": [{"name": "x", "embedding": "abc"}],
    }.items():
        (tmp_path / f"e_{name}.json").write_text(json.dumps({"schema": 1, "embedder": "test-embedder", "identities": ids}))
    (tmp_path / "e_schema9.json").write_text(json.dumps({"schema": 999, "identities": []}))
    (tmp_path / "e_notjson.json").write_text("{")
    fill(small_disk)
    return tmp_path, k


def _cases(w: Path, k: dict):
    """(arguments, words the one line must hold: one of those between '|') for each case."""
    ro, full, folder, photo = k["ro"], k["full"], k["dir"], k["photo"]
    g = ("--gallery", w / "g.db")
    images = {
        w / "empty.jpg": "empty (0 bytes)",
        w / "text.jpg": "cannot read",
        w / "trunc.jpg": "truncated JPEG",
        folder: "is a folder",
        w / "missing.jpg": "not found",
    }
    for img, word in images.items():
        yield ("enroll", "zed", img, *g), word
        yield ("verify", photo, img), word
        yield ("identify", img, *g), word
        yield ("stylize", img, "--style", "1", "--output", w / "o.jpg"), word
    galleries = {w / "corrupt.db": "damaged", w / "notes.txt": "damaged", folder: "is a folder", ro / "g.db": "Read-only", full / "g.db": "disk is full"}
    for gal, word in galleries.items():
        yield ("enroll", "zed", photo, "--gallery", gal), word
        yield ("gallery", "import", w / "e_shortvec.json", "--gallery", gal), word
    for gal in (w / "corrupt.db", w / "notes.txt"):
        for cmd in (("identify", photo), ("gallery", "list"), ("gallery", "remove", "ann"), ("gallery", "export", w / "x.json")):
            yield (*cmd, "--gallery", gal), "damaged"
        yield ("bundle", "--target", "cpu", "--no-embedder", "--output", w / "b", "--gallery", gal), "damaged"
    for name, word in (
        ("intname", "lacks a name"),
        ("ansi", "control or formatting"),
        ("shortvec", "5-d"),
        ("strvec", "lacks a name"),
        ("schema9", "not a gallery export"),
        ("notjson", "not JSON"),
    ):
        yield ("gallery", "import", w / f"e_{name}.json", *g), word
    for dst, word in ((ro / "x.json", "Read-only"), (full / "x.json", "No space left"), (folder, "is a folder"), (w / "g.db", "would overwrite")):
        yield ("gallery", "export", dst, *g), word
    models = {
        w / "empty.jpg": "0 bytes",
        w / "text.jpg": "too small",
        folder: "is a folder",
        w / "bad.tflite": "truncated or damaged",
        photo: "not a TFLite model",
        w / "missing.tflite": "not found",
    }
    for m, word in models.items():
        yield ("profile", m, "--runs", "2"), word
        yield ("enroll", "zed", photo, "--embedder", m, "--gallery", w / "g2.db"), word
    for src, word in ((w / "empty.jpg", "empty (0 bytes)"), (w / "text.jpg", "gave no frame"), (folder, "is a folder"), (w / "missing.mp4", "not found")):
        yield ("camera", "--source", src, "--headless", "--max-frames", "2"), word
    for out, word in (
        (ro / "o.mp4", "read-only"),
        (full / "o.mp4", "disk is full"),
        (folder, "is a folder"),
        (w / "c.mp4", "would overwrite"),
        (w / "o.txt", "unsupported output"),
    ):
        yield ("camera", "--source", w / "c.mp4", "--headless", "--output", out), word
    for out, word in ((ro / "s.jpg", "read-only"), (full / "s.jpg", "No space left"), (folder, "must be an image file"), (photo, "would overwrite")):
        yield ("stylize", photo, "--style", "1", "--output", out), word
    for opt in ("--save", "--plot"):
        for out, word in ((ro / "r.png", "read-only"), (full / "r.png", "No space left"), (folder, "is a folder"), (w / "m.tflite", "would overwrite")):
            yield ("profile", w / "m.tflite", "--runs", "2", opt, out), word
    for out, word in ((ro / "b", "permission denied"), (full / "b", "No space left"), (w / "m.tflite", "not a folder"), (w, "not empty")):
        yield ("bundle", "--target", "cpu", "--no-embedder", "--output", out), word
    for out, word in ((ro / "d", "read-only"), (full / "d", "disk is full|No space left"), (w / "m.tflite", "not a folder"), (w, "not empty")):
        yield ("demo", "--output", out), word


def _state(w: Path, k: dict) -> dict:
    """Every file under the work folder and the two disks, with its sha256."""
    files = [p for root in (w, k["full"], k["ro"]) for p in root.rglob("*") if p.is_file()]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_every_bad_input_and_every_bad_place_is_one_line_and_changes_nothing(kit):
    w, k = kit
    before = _state(w, k)
    wrong = []
    for args, word in _cases(w, k):
        proc = run_cli(*args, timeout=120, env={"EDGECNN_HOME": str(w / "home")})
        lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]  # besides progress lines (demo's stages)
        shown = " ".join(str(a).replace(str(w), "W") for a in args)
        said = lines[-1].lower() if len(lines) == 1 and lines[0] == proc.stderr.strip().splitlines()[-1] else ""
        if proc.returncode == 0 or "internal error" in said or not any(alt.lower() in said for alt in word.split("|")):
            wrong.append(f"{shown}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        after = {p: h for p, h in _state(w, k).items() if not p.startswith(str(w / "home"))}
        if after != {p: h for p, h in before.items() if not p.startswith(str(w / "home"))}:
            wrong.append(f"{shown}: changed or left files: {sorted(set(after.items()) ^ set(before.items()))[:4]}")
            before = _state(w, k)
    assert not wrong, "\n".join(wrong)
