"""`edgecnn profile`: benchmark_model-style numbers, thread sweep, compare, predict, plot."""

import json

import pytest
from helpers import assert_one_line_error, run_cli

from edgecnn.targets import load_target

pytestmark = [pytest.mark.tf]


def test_profile_json_report(mnv2_int8_file, tmp_path):
    out, _ = mnv2_int8_file
    proc = run_cli("profile", out, "--threads", "1,2", "--runs", "20", "--warmup", "2", "--json", "--save", tmp_path / "a.json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    lat = r["latency_ms"]
    assert set(lat) >= {"p50", "p90", "p99", "min", "max", "mean", "std", "count"}
    assert lat["count"] == 20 and lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert r["load_ms"] > 0 and r["first_inference_ms"] > 0 and r["throughput_fps"] > 0
    assert [s["threads"] for s in r["thread_sweep"]] == [1, 2] and r["scaling_1_to_2"] > 0
    assert r["peak_rss_bytes"] > 10_000_000 and r["machine"]["cores"] >= 1 and r["ops"]["CONV_2D"] == 35
    assert json.loads((tmp_path / "a.json").read_text())["latency_ms"]["count"] == 20


def test_profile_seconds_compare_plot_and_predict(mnv2_int8_file, tmp_path):
    out, _ = mnv2_int8_file
    a = run_cli("profile", out, "--seconds", "0.5", "--threads", "1", "--save", tmp_path / "one.json", "--label", "1 thread")
    assert a.returncode == 0, a.stderr
    b = run_cli("profile", out, "--runs", "10", "--threads", "2", "--save", tmp_path / "two.json", "--label", "2 threads")
    assert b.returncode == 0
    proc = run_cli("profile", "--compare", tmp_path / "one.json", tmp_path / "two.json", "--plot", tmp_path / "cmp.png")
    assert proc.returncode == 0, proc.stderr
    assert "1 thread" in proc.stdout and "2 threads" in proc.stdout
    assert (tmp_path / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    proc = run_cli("profile", out, "--runs", "5", "--predict", "rpi4", "--json")
    p = json.loads(proc.stdout)["predict"]
    from edgecnn.targets.predict import predict_ms, summary

    fitted = summary(load_target("rpi4"))  # the latency model fitted to the profile's published results
    assert p["macs"] > 5e6 and p["compute"] == "int8"
    assert p["estimate_ms"] == pytest.approx(predict_ms(fitted, p["macs"], "int8", 4), abs=1e-3)
    assert p["range_ms"][0] < p["estimate_ms"] < p["range_ms"][1]
    proc = run_cli("profile", out, "--runs", "5", "--predict", "coral", "--json")
    assert "warning" not in json.loads(proc.stdout)["predict"]  # int8 MobileNetV2 maps to the Edge TPU


def test_profile_bad_usage(tmp_path, mnv2_int8_file):
    assert_one_line_error(run_cli("profile"), 2, "give a MODEL")
    (tmp_path / "x.json").write_text("{}")
    assert_one_line_error(run_cli("profile", "--compare", tmp_path / "x.json"), 2, "not a result")
    assert_one_line_error(run_cli("profile", mnv2_int8_file[0], "--runs", "3", "--seconds", "1"), 2, "not both")
    assert_one_line_error(run_cli("profile", mnv2_int8_file[0], "--predict", "cpu"), 2, "no [[predict.reference]]")
