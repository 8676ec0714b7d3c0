"""A full disk at any write: one line naming it, nothing half-written at a final name, and a gallery
that holds every enrolment that returned (on a 400 KB tmpfs that the test fills)."""

import json
import sqlite3

import numpy as np
import pytest
from helpers import FACES, assert_one_line_error, fill, run_cli

pytestmark = [pytest.mark.device]


def _left(folder, filler) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p != filler)


def _people(path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [r[0] for r in db.execute("SELECT name FROM identities ORDER BY name")]
    finally:
        db.close()


def test_a_gallery_on_a_full_disk_keeps_every_enrolment_that_returned(small_disk, tmp_path):
    from edgecnn.core.errors import EdgecnnError
    from edgecnn.device.gallery import Gallery

    path = small_disk / "g.db"
    g = Gallery(path)
    rng = np.random.default_rng(0)
    returned = []
    filler = fill(small_disk, leave=48 << 10)
    for i in range(40):  # each keeps a 16 KB face crop: the disk fills part-way through an enrolment
        try:
            g.enroll(f"p{i:02d}", [rng.standard_normal(8)], "e", images=[rng.bytes(16 << 10)])
        except EdgecnnError as exc:
            assert "the disk is full" in str(exc) and "was not stored" in str(exc) and "\n" not in str(exc)
            break
        returned.append(f"p{i:02d}")
    else:
        pytest.fail("the disk never filled")
    g.close()
    assert returned and _people(path) == returned
    export = tmp_path / "e.json"
    export.write_text(json.dumps({"schema": 1, "embedder": "e", "identities": [{"name": "late", "embedding": [0.5] * 8}]}))
    filler.unlink()
    fill(small_disk)
    for args in (("gallery", "import", export, "--gallery", path), ("gallery", "export", small_disk / "out.json", "--gallery", path)):
        assert_one_line_error(run_cli(*args), 1, "disk is full" if args[1] == "import" else "No space left")
    assert _people(path) == returned and not (small_disk / "out.json").exists()
    filler.unlink()
    assert run_cli("gallery", "import", export, "--gallery", path).returncode == 0
    assert _people(path) == sorted([*returned, "late"])


def test_a_new_gallery_on_a_full_disk_is_one_line_and_leaves_no_empty_file(small_disk, tmp_path):
    export = tmp_path / "e.json"
    export.write_text(json.dumps({"schema": 1, "embedder": "e", "identities": [{"name": "ann", "embedding": [0.5] * 8}]}))
    filler = fill(small_disk)
    proc = run_cli("gallery", "import", export, "--gallery", small_disk / "g.db")
    assert proc.returncode != 0 and "the disk is full" in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1
    assert _left(small_disk, filler) == []  # before: a 0-byte g.db with its -wal and -shm, "not a gallery" from then on


@pytest.mark.slow
@pytest.mark.tf
def test_convert_and_stylize_into_a_full_disk_are_one_line_and_write_nothing(small_disk):
    filler = fill(small_disk)
    for args in (
        ("convert", "lenet5", "--output", small_disk / "l.tflite"),
        ("convert", "lenet5", "--precision", "int8", "--samples", "8", "--output", small_disk / "q.tflite"),
        ("stylize", FACES / "obama.jpg", "--style", "1", "--output", small_disk / "s.jpg"),
    ):
        proc = run_cli(*args)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("edgecnn: note:")]
        assert proc.returncode == 1 and len(lines) == 1 and "No space left on device; nothing was written" in lines[0], (args, proc.stderr)
        assert _left(small_disk, filler) == [], args


@pytest.mark.slow
@pytest.mark.tf
def test_benchmark_cells_that_meet_a_full_disk_fail_loudly_and_run_again(small_disk):
    out = small_disk / "b"
    filler = fill(small_disk, leave=100 << 10)  # room for the results, not for the 250 KB model
    args = ("benchmark", "--models", "lenet5", "--precisions", "fp32", "--runs", "3", "--samples", "8", "--output", out, "--json")
    proc = run_cli(*args)
    assert proc.returncode == 1 and "1 of 1 cells failed" in proc.stderr and "No space left" in proc.stderr, proc.stderr
    filler.unlink()
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["ok"] == 1 and r["cached"] == 0  # the failure was not kept as the cell's result
