"""Latency prediction fitted to published results (targets/predict.py), and the Edge TPU's
on-chip parameter memory. No TensorFlow: the device side predicts too."""

import json

import numpy as np
import pytest
from helpers import carried_model, run_cli

pytestmark = [pytest.mark.device]


def test_fit_recovers_the_constants_that_made_the_references():
    from edgecnn.targets.predict import fit, leave_one_out, predict_ms

    true = {"k_ms_per_gmac": {"int8": 20.0, "float": 80.0}, "thread_exponent": {"int8": 0.8, "float": 0.4}, "overhead_ms": 2.0, "classes": ["int8", "float"]}
    refs = [
        {"model": f"m{i}", "macs": macs, "precision": prec, "threads": t, "ms": predict_ms(true, macs, prec, t), "source": "synthetic"}
        for i, (macs, prec, t) in enumerate(
            [(3e8, "int8", 1), (3e8, "int8", 4), (8e8, "int8", 2), (6e8, "fp32", 1), (6e8, "fp32", 4), (1e9, "fp16", 2), (2e8, "int8", 4)]
        )
    ]
    m = fit(refs)
    assert m["thread_exponent"] == {"int8": 0.8, "float": 0.4}
    assert m["k_ms_per_gmac"]["int8"] == pytest.approx(20.0, rel=1e-6) and m["k_ms_per_gmac"]["float"] == pytest.approx(80.0, rel=1e-6)
    assert m["overhead_ms"] == pytest.approx(2.0, abs=1e-6)
    loo = leave_one_out(refs)
    assert loo["predicted"] == len(refs) and loo["max_abs_error"] < 1e-6
    # the one reference of a precision cannot be predicted from the others: said, not guessed
    lone = leave_one_out(refs[:3] + [refs[3]])
    assert lone["per_reference"][3]["predicted_ms"] is None and "only reference" in lone["per_reference"][3]["note"]


def test_targets_json_shows_each_fit_its_sources_and_leave_one_out_error():
    proc = run_cli("targets", "--json")
    assert proc.returncode == 0, proc.stderr
    targets = {t["name"]: t for t in json.loads(proc.stdout)}
    assert targets["cpu"]["predict_fit"] is None
    for name, n_refs in (("rpi4", 10), ("rpi5", 5), ("coral", 3)):
        f = targets[name]["predict_fit"]
        assert len(f["references"]) == n_refs and all(r["source"] and r["macs_source"] for r in f["references"])
        loo = f["leave_one_out"]
        assert loo["predicted"] == n_refs and len(loo["per_reference"]) == n_refs
        errors = [abs(r["error"]) for r in loo["per_reference"]]
        assert loo["mean_abs_error"] == pytest.approx(np.mean(errors), abs=1e-3)
    # the goal (within ±30% on average) holds on the Pis; Coral's three references do not support it (README says so)
    assert targets["rpi4"]["predict_fit"]["leave_one_out"]["mean_abs_error"] <= 0.30
    assert targets["rpi5"]["predict_fit"]["leave_one_out"]["mean_abs_error"] <= 0.30
    assert targets["coral"]["predict_fit"]["leave_one_out"]["mean_abs_error"] > 0.30


def test_edge_tpu_parameter_memory_on_a_published_model():
    from edgecnn.core import tflite_file
    from edgecnn.targets.edgetpu import STREAM_BYTES_PER_S, check, parameter_memory

    info = tflite_file.read(carried_model("efficientnet_lite0.tflite"))  # 5.4 MB, uint8 full-integer
    assert info.compute_class() == "int8"
    mem = check(info)["parameter_memory"]
    assert mem["fits_on_chip"] and mem["streamed_bytes"] == 0 and 4.0e6 < mem["parameter_bytes"] < 5.4e6
    small = parameter_memory(info, onchip=1e6)  # a chip with 1 MB: the rest streams, and the cost is said
    assert not small["fits_on_chip"] and small["streamed_bytes"] == mem["parameter_bytes"] - 1_000_000
    assert small["stream_ms_per_inference"] == pytest.approx(small["streamed_bytes"] / STREAM_BYTES_PER_S * 1e3, abs=0.01)
    deeplab = tflite_file.read(carried_model("deeplabv3.tflite"))
    assert deeplab.compute_class() == "float"


def test_predict_uses_the_fit_for_the_models_compute_class():
    """(FaceNet int8, beyond the Edge TPU's on-chip memory, is in test_facenet_convert.py.)"""
    from edgecnn.core import tflite_file
    from edgecnn.device.profiling import predict_latency
    from edgecnn.targets import load_target
    from edgecnn.targets.predict import predict_ms, summary

    path = carried_model("efficientnet_lite0.tflite")
    p = predict_latency(path, "rpi5")
    fitted = summary(load_target("rpi5"))
    info = tflite_file.read(path)
    assert p["compute"] == "int8" and p["threads"] == 4
    assert p["estimate_ms"] == pytest.approx(predict_ms(fitted, info.macs(), "int8", 4), abs=1e-3)
    assert p["range_ms"][0] < p["estimate_ms"] < p["range_ms"][1]
    assert p["leave_one_out_error"]["mean"] <= 0.30 and len(p["sources"]) >= 2
    c = predict_latency(path, "coral")
    assert c["edgetpu_check"]["parameter_memory"]["fits_on_chip"] and "streaming" not in c
