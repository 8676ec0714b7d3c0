"""Target profiles as data, op coverage rules checked against the real interpreter, Edge TPU check."""

import json

import pytest
from helpers import assert_one_line_error, run_cli

from edgecnn.targets import list_targets, load_target
from edgecnn.targets.coverage import delegate_coverage
from edgecnn.targets.edgetpu import check, compile_for_edgetpu, parse_compiler_log


def test_builtin_profiles_and_cli():
    names = list(list_targets())
    assert names[:5] == ["cpu", "rpi4", "rpi5", "android-gpu", "coral"]
    coral = load_target("coral")
    assert (coral.precision, coral.io, coral.delegate) == ("int8", "uint8", "edgetpu") and "libedgetpu.so.1" in coral.delegate_library
    assert load_target("android-gpu").precision == "fp16"
    assert load_target("rpi4").threads == 4 and load_target("rpi5").threads == 4
    assert all(t.why for t in list_targets().values())  # every default recipe says why
    proc = run_cli("targets", "--json")
    assert proc.returncode == 0
    assert {t["name"] for t in json.loads(proc.stdout)} >= {"cpu", "rpi4", "rpi5", "android-gpu", "coral"}


def test_user_adds_a_target_by_adding_a_file(tmp_path):
    (tmp_path / "jetson.toml").write_text('name = "jetson"\ndescription = "Jetson Nano CPU"\nthreads = 4\nprecision = "fp16"\n')
    proc = run_cli("targets", "--json", env={"EDGECNN_TARGETS": str(tmp_path)})
    assert "jetson" in {t["name"] for t in json.loads(proc.stdout)}
    (tmp_path / "broken.toml").write_text('name = "broken"\ndescription = "x"\nprecision = "int3"\n')
    assert_one_line_error(run_cli("targets", env={"EDGECNN_TARGETS": str(tmp_path)}), 2, "precision must be one of")


@pytest.fixture(scope="module")
def four_precisions(tmp_path_factory, digits_lenet):
    from edgecnn.converters.convert import ConvertOptions, convert

    folder = tmp_path_factory.mktemp("prec")
    out = {}
    for p in ("fp32", "fp16", "dynamic", "int8"):
        path = folder / f"{p}.tflite"
        convert(
            "mobilenet_v2",
            ConvertOptions(
                precision=p,
                output=str(path),
                samples=16,
                debug_layers=False,
                measure_latency=False,
                builder_options={"alpha": 0.35, "input_size": 64, "num_classes": 10},
            ),
        )
        out[p] = path
    # 16x8 needs realistic activations (random weights make its scales vanish): the trained LeNet
    path = folder / "int16x8.tflite"
    convert(
        str(digits_lenet["keras"]),
        ConvertOptions(precision="int16x8", output=str(path), calibration=str(digits_lenet["train"]), samples=50, debug_layers=False, measure_latency=False),
    )
    out["int16x8"] = path
    return out


@pytest.mark.slow
@pytest.mark.tf
def test_xnnpack_rules_predict_the_interpreters_partitions(four_precisions):
    """Our XNNPACK table predicts how many delegate partitions the real interpreter makes."""
    from edgecnn.device.runtime import Model

    for precision, path in four_precisions.items():
        m = Model(path)
        n = len(m.file.operators)
        real = sum(1 for o in m.interpreter._get_ops_details()[n:] if o["op_name"] == "DELEGATE")
        assert delegate_coverage(m.file, "xnnpack")["partitions"] == real, precision
    assert real == 0  # int16x8 (last): no XNNPACK kernels at all


@pytest.mark.slow
@pytest.mark.tf
def test_edgetpu_check_names_first_unsupported_op(four_precisions, lenet_int8_uint8):
    fp32 = check(four_precisions["fp32"])
    assert not fp32["compatible"] and fp32["first_unsupported"]["index"] == 0
    assert any("float activation" in p for p in fp32["problems"])
    ok = check(lenet_int8_uint8[0])
    assert ok["compatible"] and ok["ops_mapped"] == ok["ops_total"]
    res = compile_for_edgetpu(lenet_int8_uint8[0])  # no compiler on this machine
    assert res["compiled"] is False and "edgetpu_compiler -s" in res["message"]


def test_compiler_log_parsing():
    log = """Edge TPU Compiler version 16.0.384591198
Model compiled successfully in 412 ms.
Input model: m.tflite
Output model: m_edgetpu.tflite
On-chip memory used for caching model parameters: 3.01MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 67
Number of operations that will run on Edge TPU: 65
Number of operations that will run on CPU: 2
Operator                       Count      Status
SOFTMAX                        1          Mapped to Edge TPU
DEQUANTIZE                     1          Operation is working on an unsupported data type
"""
    r = parse_compiler_log(log)
    assert r["ops_on_edgetpu"] == 65 and r["ops_on_cpu"] == 2 and r["subgraphs"] == 1
    assert r["on_chip_memory"] == "3.01MiB"
    assert r["cpu_reasons"] == [{"op": "DEQUANTIZE", "count": 1, "why": "Operation is working on an unsupported data type"}]


@pytest.mark.slow
@pytest.mark.tf
def test_yolo_offers_relu6_for_coral(tmp_path):
    """LEAKY_RELU has no Edge TPU kernel: the paper's leaky YOLO leaves everything after its first
    convolution on the host; with activation=relu6 all but the 5-D grid reshape at the end map."""
    from edgecnn.converters.convert import ConvertOptions, convert
    from edgecnn.targets.edgetpu import check

    result = {}
    for act in ("leaky", "relu6"):
        out = tmp_path / f"yolo_{act}.tflite"
        convert(
            "yolo",
            ConvertOptions(
                precision="int8",
                io="uint8",
                output=str(out),
                samples=8,
                debug_layers=False,
                builder_options={"input_shape": (96, 96, 3), "num_classes": 3, "activation": act},
            ),
        )
        result[act] = check(out)
    assert result["leaky"]["first_unsupported"]["op"] == "LEAKY_RELU" and result["leaky"]["ops_mapped"] <= 2
    relu6 = result["relu6"]
    assert relu6["first_unsupported"]["op"] == "RESHAPE" and relu6["ops_mapped"] == relu6["ops_total"] - 2
    with pytest.raises(Exception, match="activation must be one of"):
        from edgecnn.models import build

        build("yolo", input_shape=(96, 96, 3), activation="swish")
