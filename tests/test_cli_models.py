import json

import pytest
from helpers import assert_one_line_error, run_cli, run_cli_without_tf

pytestmark = [pytest.mark.tf]


@pytest.mark.slow  # builds every registered model at its default size
def test_shipped_catalog_matches_the_builders():
    from edgecnn.models.catalog import model_catalog
    from edgecnn.models.known import catalog

    assert json.loads(json.dumps(model_catalog())) == catalog()  # regenerate: python -m edgecnn.models.catalog


def test_models_table_lists_every_model_without_tensorflow():
    proc = run_cli_without_tf("models", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert {"lenet5", "vgg16", "efficientnet_b7", "yolo", "siamese", "googlenet"} <= set(rows)
    assert rows["vgg16"]["params"] == 138357544
    table = run_cli("models")
    assert table.returncode == 0 and "138,357,544" in table.stdout
    assert "Traceback" not in proc.stderr


def test_inspect_json_with_knobs():
    proc = run_cli("inspect", "mobilenet_v2", "--alpha", "0.35", "--input-size", "96", "--classes", "10", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["options"] == {"alpha": 0.35, "input_shape": [96, 96, 3], "num_classes": 10}
    assert rep["input_shape"] == [96, 96, 3] and rep["output_shape"] == [10]
    assert sum(r["params"] for r in rep["layers"]) == rep["params"]
    assert sum(r["macs"] for r in rep["layers"]) == rep["macs"]
    assert rep["layers"][-1]["name"] == "predictions"


def test_inspect_table_with_phi():
    proc = run_cli("inspect", "efficientnet", "--phi", "0.5", "--include-top", "false")  # any phi, not only B0-B7
    assert proc.returncode == 0, proc.stderr
    assert "top_conv" in proc.stdout and "params" in proc.stdout


def test_unknown_model_name_is_rejected_before_tensorflow_loads():
    for args in (("inspect", "mobilenet_v9"), ("convert", "resnet5O")):
        err = assert_one_line_error(run_cli_without_tf(*args), 2, "unknown model")
        assert "did you mean" in err


def test_inspect_bad_name_and_knob_are_exit_2_one_line():
    assert_one_line_error(run_cli("inspect", "mobilenet_v9"), 2, "did you mean mobilenet_v2")
    assert_one_line_error(run_cli("inspect", "zzz"), 2, "known models: alexnet")
    err = assert_one_line_error(run_cli("inspect", "lenet5", "--alpha", "2"), 2, "valid options:")
    assert "classic" in err
    assert_one_line_error(run_cli("inspect", "mobilenet_v2", "--alpha", "-1"), 2, "alpha")
    assert_one_line_error(run_cli("inspect", "lenet5", "--classes"), 2, "needs a value")
    proc = run_cli("models", "--bogus")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
