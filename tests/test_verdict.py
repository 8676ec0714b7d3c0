"""int8 you can trust: every figure with its sample count and 95% interval, and a verdict that an
optimistic figure on a handful of samples cannot turn into "deploy"."""

import json

import numpy as np
import pytest
from helpers import assert_one_line_error, run_cli


def test_wilson_interval_matches_the_textbook_values():
    from edgecnn.converters.verdict import wilson

    lo, hi = wilson(9, 9)  # 9 of 9: the true rate may be as low as 0.70
    assert lo == pytest.approx(0.7008, abs=1e-3) and hi == 1.0
    lo, hi = wilson(112, 120)  # the rotation classifier's 0.933 on 120 held-out inputs
    assert (round(lo, 3), round(hi, 3)) == (0.874, 0.966)
    assert wilson(0, 0) == (0.0, 1.0)


def _acc(k, n):
    from edgecnn.converters.verdict import wilson

    return {"samples": n, "top1_agreement": k / n, "top1_agreement_ci95": list(wilson(k, n))}


@pytest.mark.parametrize(
    "k, n, kept, verdict",
    [
        (9, 9, None, "undecided"),  # 1.000 on 9 samples: not evidence enough to ship
        (200, 200, None, "deploy"),
        (200, 200, ["conv1"], "deploy with the listed float layers"),
        (150, 200, None, "do not deploy"),
        (150, 200, ["conv1"], "do not deploy"),
    ],
)
def test_the_verdict_follows_the_interval_not_the_point(k, n, kept, verdict):
    from edgecnn.converters.verdict import decide

    v = decide("classification", "int8", _acc(k, n), None, kept)
    assert v["verdict"] == verdict and v["samples"] == n and v["tolerance"] == 0.98
    assert f"{n} held-out inputs" in v["reason"]
    if verdict == "do not deploy" and kept:
        assert "even with the listed layers in float" in v["reason"]


def test_a_tolerance_of_the_users_and_the_fp32_and_unmeasured_cases():
    from edgecnn.converters.verdict import decide

    assert decide("classification", "int8", _acc(190, 200), 0.9)["verdict"] == "deploy"
    assert decide("classification", "int8", _acc(190, 200))["verdict"] == "do not deploy"
    assert decide("classification", "int8", None)["verdict"] == "undecided"
    assert decide(None, "fp32", None, reference={"ok": True, "against": "keras", "samples": 16})["verdict"] == "deploy"
    assert decide(None, "fp32", None, reference={"ok": False})["verdict"] == "do not deploy"


def test_an_int8_file_slower_than_fp32_is_said_plainly():
    from edgecnn.converters.verdict import headline, speed

    slow = speed({"p50": 2.4, "fp32_p50": 1.0, "speedup_vs_fp32": 1 / 2.4, "threads": 2}, "cpu")
    assert slow["verdict"] == "slower" and "2.40x SLOWER" in slow["reason"]
    assert speed({"p50": 1.0, "fp32_p50": 1.5, "speedup_vs_fp32": 1.5, "threads": 2}, "cpu")["verdict"] == "faster"
    line = headline({"verdict": {"verdict": "deploy", "reason": "fine"}, "speed": slow})
    assert line.startswith("DEPLOY: fine") and "SLOWER" in line


def test_compare_outputs_gives_intervals_and_top5():
    from edgecnn.converters.evaluation import compare_outputs

    rng = np.random.default_rng(0)
    ref = [rng.random(10) for _ in range(50)]
    got = [r + rng.normal(0, 0.05, 10) for r in ref]
    acc = compare_outputs("classification", ref, got)
    lo, hi = acc["top1_agreement_ci95"]
    assert lo <= acc["top1_agreement"] <= hi and 0 < hi - lo < 0.5
    assert acc["top5_agreement"] >= acc["top1_agreement"]
    clo, chi = acc["cosine_mean_ci95"]
    assert clo <= acc["cosine_mean"] <= chi


@pytest.mark.tf
def test_flags_that_would_do_nothing_are_refused():
    assert_one_line_error(run_cli("convert", "lenet5", "--precision", "fp16", "--keep-float", "auto"), 2, "--keep-float applies to --precision int8")
    assert_one_line_error(run_cli("convert", "lenet5", "--tolerance", "2"), 2, "--tolerance")


@pytest.mark.tf
@pytest.mark.slow
def test_every_convert_report_leads_with_its_verdict(digits_lenet, tmp_path):
    """A trained LeNet at int8 on the held-out digits calibration did not use: the JSON's verdict, the
    text's first line and the HTML's first line say the same."""
    out = tmp_path / "l.tflite"
    args = ("convert", digits_lenet["keras"], "--precision", "int8", "--calibration", digits_lenet["train"], "--samples", "100", "--no-layers", "--output", out)
    rep = json.loads(run_cli(*args, "--json").stdout)
    v = rep["verdict"]
    assert v["samples"] == rep["accuracy"]["samples"] == rep["calibration"]["held_out"] >= 150
    assert v["verdict"] in ("deploy", "undecided", "do not deploy") and v["ci95"][0] <= v["value"] <= v["ci95"][1]
    assert rep["speed"]["verdict"] in ("faster", "about as fast", "slower")
    text = run_cli(*args, "--html", tmp_path / "r.html")
    assert text.returncode == 0, text.stderr
    first = text.stdout.splitlines()[0]
    assert first.startswith(v["verdict"].upper() + ":")
    page = (tmp_path / "r.html").read_text()
    assert page.index(v["verdict"].upper() + ":") < page.index("<h1>")


def _outlier_classifier(path):
    """A classifier with an outlier channel: one feature hundreds of times the others sets the int8 scale
    of the tensor it shares with them (crushing them), and the next layer drops it. Per-tensor int8
    loses the answer; keeping that tensor's producer and reader in float gives it back."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((24, 24, 3))
    x = layers.Conv2D(16, 3, activation="relu", name="stem")(inp)
    wide, narrow = layers.Conv2D(8, 1, name="wide"), layers.Conv2D(8, 1, name="narrow")
    x = layers.GlobalAveragePooling2D()(narrow(wide(x)))
    head = layers.Dense(10, activation="softmax", name="head")
    model = keras.Model(inp, head(x))
    w, b = wide.get_weights()
    b[0] = 300.0
    wide.set_weights([w, b])
    w, b = narrow.get_weights()
    w[:, :, 0, :] = 0
    narrow.set_weights([w * 4, b])
    w, b = head.get_weights()
    head.set_weights([w * 40, b])  # decisive logits: an answer int8 rounding alone does not flip
    model.save(path)
    return path


@pytest.mark.tf
@pytest.mark.slow
def test_keep_float_auto_searches_until_the_verdict_holds_and_says_when_it_cannot(tmp_path):
    from edgecnn.converters.convert import ConvertOptions, convert

    src = _outlier_classifier(tmp_path / "outlier.keras")
    opts = dict(precision="int8", calibration="bundled:digits", samples=50, keep_float="auto")
    rep = convert(str(src), ConvertOptions(output=str(tmp_path / "a.tflite"), tolerance=0.95, **opts))
    kf, v = rep["keep_float"], rep["verdict"]
    assert rep["calibration"]["held_out"] == 200 and rep["calibration"]["samples"] == 50
    assert kf["accuracy_before"]["top1_agreement"] < 0.9  # plain int8 loses the answer
    # the outlier tensor is ranked first, kept in float with the layer that reads it; more follow until proven
    first = kf["steps"][0]["layers"]
    assert len(first) == 2 and "wide" in first[0] and "narrow" in first[1], first
    assert [len(s["layers"]) for s in kf["steps"]] == sorted(len(s["layers"]) for s in kf["steps"])
    assert kf["accuracy_after"]["top1_agreement_ci95"][0] >= 0.95 and "note" not in kf
    assert v["verdict"] == "deploy with the listed float layers" and v["float_layers"] == kf["layers"]
    assert kf["size_vs_int8"] <= 1.3 and rep["float_tensors"] > 0  # the written file is the one with float layers
    # a tolerance no step can prove on 200 inputs: the best step is written, and the report says so
    rep = convert(str(src), ConvertOptions(output=str(tmp_path / "b.tflite"), tolerance=0.999, **opts))
    assert "not within the tolerance" in rep["keep_float"]["note"] and rep["verdict"]["verdict"] != "deploy with the listed float layers"
    best = max(s["metric"] for s in rep["keep_float"]["steps"])
    assert rep["keep_float"]["accuracy_after"]["top1_agreement"] == best
