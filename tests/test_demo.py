"""The README's first command: `edgecnn demo` on bundled real data, and its folder rules."""

import json

import pytest
from helpers import assert_one_line_error, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def test_demo_labels_obama_and_replaces_only_its_own_files(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--output", out, "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    s = r["summary"]
    assert s["frames"] == 72 and s["identities"].get("obama", 0) > 0
    assert r["astronaut_frames_with_face"] >= 0.9 * r["astronaut_frames"]
    assert (out / "demo_output.mp4").stat().st_size > 0
    (out / "my_notes.txt").write_text("mine")  # a second run replaces its own files and nothing else
    assert run_cli("demo", "--output", out, "--json").returncode == 0
    assert (out / "my_notes.txt").read_text() == "mine"
    user = tmp_path / "photos"
    user.mkdir()
    (user / "gallery.db").write_text("not the demo's")
    assert_one_line_error(run_cli("demo", "--output", user), 2, "not empty")
    assert (user / "gallery.db").read_text() == "not the demo's"
