"""`edgecnn convert` on real data through the real converter and interpreter."""

import json

import numpy as np
import pytest
from helpers import assert_one_line_error, run_cli

from edgecnn.core import tflite_file

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def test_lenet_digits_int8_within_one_point_of_float(digits_lenet, tmp_path):
    out = tmp_path / "lenet_int8.tflite"
    proc = run_cli(
        "convert",
        digits_lenet["keras"],
        "--precision",
        "int8",
        "--calibration",
        digits_lenet["train"],
        "--eval",
        digits_lenet["test"],
        "--labels",
        ",".join(map(str, range(10))),
        "--output",
        out,
        "--json",
        "--report",
        tmp_path / "r.json",
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    ev = rep["eval"]
    assert ev["samples"] == 359
    assert ev["float_top1"] > 0.95
    assert abs(ev["top1"] - ev["float_top1"]) <= 0.01, ev
    assert abs(ev["float_top1"] - digits_lenet["float_acc"]) < 0.005  # the fp32 TFLite equals Keras
    assert rep["accuracy"]["top1_agreement"] >= 0.95
    assert rep["float_tensors"] <= 2 and rep["size_ratio"] < 0.35
    assert json.loads((tmp_path / "r.json").read_text())["output"] == str(out)
    meta = tflite_file.read_metadata(out)
    assert meta["preprocess"]["channels"] == 1 and meta["preprocess"]["height"] == 32
    assert meta["labels"] == [str(i) for i in range(10)] and meta["precision"] == "int8"
    layers = rep["layers"]
    nsr = [r["channel_nsr"] or 0.0 for r in layers]  # worst first: the noise each output channel gets, over its signal
    assert layers and nsr == sorted(nsr, reverse=True) and max(nsr) > 0 and all(r["rmse_over_scale"] is not None for r in layers)


def test_every_precision_converts_and_shrinks(digits_lenet, tmp_path):
    from edgecnn.converters.convert import ConvertOptions, convert

    sizes = {}
    for precision in ("fp32", "fp16", "dynamic", "int8", "int16x8"):
        rep = convert(
            str(digits_lenet["keras"]),
            ConvertOptions(precision=precision, output=str(tmp_path / f"{precision}.tflite"), calibration="bundled:digits", samples=60, debug_layers=False),
        )
        sizes[precision] = rep["size_bytes"]
        info = tflite_file.read(tmp_path / f"{precision}.tflite")
        if precision == "int16x8":
            assert any(t.dtype == "int16" for t in info.tensors)
        if precision != "fp32":
            assert rep["accuracy"]["top1_agreement"] >= 0.9, (precision, rep["accuracy"])
    assert sizes["fp16"] < 0.6 * sizes["fp32"]
    assert sizes["int8"] < 0.35 * sizes["fp32"] and sizes["dynamic"] < 0.35 * sizes["fp32"]


def test_mobilenet_v2_int8_from_video_cli(mnv2_int8):
    out, rep = mnv2_int8
    assert out.exists()
    assert rep["precision"] == "int8" and rep["target"] == "cpu"
    assert rep["size_bytes"] <= 0.30 * rep["float_size_bytes"]
    assert rep["float_tensors"] <= 2  # only the float input and output around QUANTIZE/DEQUANTIZE
    assert rep["calibration"]["source"].startswith("video")
    assert set(rep["coverage"]) == {"xnnpack", "gpu", "edgetpu"}
    assert rep["latency_ms"]["p50"] > 0 and rep["latency_ms"]["fp32_p50"] > 0
    for key in ("output", "precision", "target", "size_bytes", "float_size_bytes", "seconds", "ops", "coverage", "accuracy", "layers"):
        assert key in rep
    from edgecnn.device.runtime import Model

    m = Model(out)
    y = m.predict(np.zeros((120, 160, 3), np.uint8))
    assert y.shape == (1000,) and np.isfinite(y).all() and (y >= 0).all()  # untrained: near-uniform softmax


def test_int8_uint8_io_for_coral(lenet_int8_uint8, digits_lenet):
    out, rep = lenet_int8_uint8
    info = tflite_file.read(out)
    assert info.tensors[info.inputs[0]].dtype == "uint8" and info.tensors[info.outputs[0]].dtype == "uint8"
    assert rep["coverage"]["edgetpu"]["first_unsupported"] is None  # everything maps; LeNet's TANH/AVG_POOL included
    from edgecnn.device.runtime import Model
    from edgecnn.models.train.digits import digits_split

    _, test = digits_split()
    m = Model(out)
    pred = m.predict_batch(list(test.images[:200])).argmax(1)
    assert (pred == np.asarray(test.labels[:200])).mean() > 0.94


def test_savedmodel_and_frozen_graph_sources(tmp_path, keras_session):
    import tensorflow as tf

    from edgecnn import models
    from edgecnn.converters.convert import ConvertOptions, convert

    m = models.build("lenet5")
    sm = tmp_path / "sm"
    m.export(str(sm), format="tf_saved_model", verbose=False)  # dynamic batch: convert makes it static
    rep = convert(str(sm), ConvertOptions(precision="fp32", output=str(tmp_path / "sm.tflite"), calibration="bundled:digits", samples=8, measure_latency=False))
    assert rep["input"]["shape"] == [1, 32, 32, 1]
    assert not {"SHAPE", "PACK", "STRIDED_SLICE"} & set(rep["ops"])

    # a TF1 frozen graph with its input and output found automatically
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: m(x, training=False)).get_concrete_function(tf.TensorSpec((1, 32, 32, 1), tf.float32, name="digits"))
    frozen = convert_variables_to_constants_v2(fn).graph.as_graph_def()
    pb = tmp_path / "frozen.pb"
    pb.write_bytes(frozen.SerializeToString())
    rep = convert(str(pb), ConvertOptions(precision="fp16", output=str(tmp_path / "pb.tflite"), calibration="bundled:digits", samples=8, measure_latency=False))
    assert rep["input"]["shape"] == [1, 32, 32, 1] and "DEQUANTIZE" in rep["ops"]

    # a legacy Keras HDF5 file, under either of its names (older packages ship .hdf5)
    for suffix in (".h5", ".hdf5"):
        m.save(tmp_path / f"lenet{suffix}")
        rep = convert(
            str(tmp_path / f"lenet{suffix}"),
            ConvertOptions(precision="fp32", output=str(tmp_path / "h5.tflite"), calibration="bundled:digits", samples=8, measure_latency=False),
        )
        assert rep["input"]["shape"] == [1, 32, 32, 1] and rep["reference"]["ok"], rep.get("reference")


@pytest.fixture(scope="module")
def flex_savedmodel(tmp_path_factory):
    import tensorflow as tf

    class Det(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, 4, 4, 1), tf.float32, name="image")])
        def __call__(self, x):
            return {"det": tf.linalg.det(x[..., 0])}

    path = tmp_path_factory.mktemp("flex") / "sm"
    mod = Det()
    tf.saved_model.save(mod, str(path), signatures={"serving_default": mod.__call__})
    return path


def test_op_without_builtin_is_named_and_flex_is_opt_in(flex_savedmodel, tmp_path):
    out = tmp_path / "det.tflite"
    err = assert_one_line_error(run_cli("convert", flex_savedmodel, "--precision", "fp32", "--output", out, "--calibration", "none"), 2, "MatrixDeterminant")
    assert "--allow-flex" in err
    assert not out.exists() and not list(tmp_path.glob("*.part"))
    proc = run_cli("convert", flex_savedmodel, "--precision", "fp32", "--output", out, "--calibration", "none", "--allow-flex", "--json")
    # the Flex model is written, but LiteRT's interpreter cannot run it: the report says so
    assert out.exists(), proc.stderr
    assert_one_line_error(run_cli("profile", out), 2, "runtime cannot load")


def test_bad_inputs_exit_2_one_line_nothing_written(tmp_path, digits_lenet):
    ok = ["--output", tmp_path / "x.tflite"]
    assert_one_line_error(run_cli("convert", tmp_path / "missing.keras", *ok), 2, "not found")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    assert_one_line_error(run_cli("convert", bad, *ok), 2, "is not a .keras file: not a zip archive")
    assert_one_line_error(run_cli("convert", "resnet51", *ok), 2, "unknown model")
    assert_one_line_error(run_cli("convert", "lenet5", "--precision", "int4", *ok), 2, "--precision: 'int4' is not one of fp32")
    assert_one_line_error(run_cli("convert", "lenet5", "--io", "uint8", "--precision", "fp16", *ok), 2, "--io uint8 needs")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "junk.jpg").write_bytes(b"nope")
    err = assert_one_line_error(run_cli("convert", "lenet5", "--precision", "int8", "--calibration", empty, *ok), 2, "no readable images")
    assert "1 unreadable" in err
    assert_one_line_error(run_cli("convert", "lenet5", "--output", tmp_path / "nofolder" / "m.tflite"), 2, "does not exist")
    assert_one_line_error(run_cli("convert", "lenet5", "--output", tmp_path / "m.onnx"), 2, ".tflite")
    assert_one_line_error(run_cli("convert", "lenet5", "--beta", "1", *ok), 2, "valid options")
    pb = tmp_path / "junk.pb"
    pb.write_bytes(b"\x00\x01garbage")
    assert_one_line_error(run_cli("convert", pb, *ok), 2, "frozen graph")
    assert not list(tmp_path.glob("*.tflite")) and not list(tmp_path.glob(".*.part"))


def test_keep_float_auto_and_named(digits_lenet, tmp_path):
    from edgecnn.converters.convert import ConvertOptions, convert

    rep = convert(
        str(digits_lenet["keras"]),
        ConvertOptions(precision="int8", output=str(tmp_path / "k.tflite"), calibration=str(digits_lenet["train"]), samples=100, keep_float="c1,f6"),
    )
    kf = rep["keep_float"]
    assert kf["used"] and kf["float_ops"] >= 2
    assert any("c1" in n for n in kf["layers"]) and any("f6" in n for n in kf["layers"])
    assert kf["accuracy_after"]["top1_agreement"] >= 0.9
    assert "CONV_2D" in rep["ops"] and rep["float_tensors"] > 2  # the written file is the selective one
    rep = convert(
        str(digits_lenet["keras"]),
        ConvertOptions(precision="int8", output=str(tmp_path / "a.tflite"), calibration=str(digits_lenet["train"]), samples=100, keep_float="auto"),
    )
    assert rep["keep_float"]["used"] is False  # a trained LeNet loses nothing: nothing to keep
    from edgecnn.core.errors import InputError

    with pytest.raises(InputError, match="no quantized layer named 'zzz'"):
        convert(
            str(digits_lenet["keras"]),
            ConvertOptions(precision="int8", output=str(tmp_path / "z.tflite"), calibration=str(digits_lenet["train"]), samples=50, keep_float="zzz"),
        )


def test_html_report(tmp_path, digits_lenet):
    proc = run_cli(
        "convert",
        digits_lenet["keras"],
        "--precision",
        "fp16",
        "--calibration",
        "bundled:digits",
        "--samples",
        "20",
        "--output",
        tmp_path / "h.tflite",
        "--html",
        tmp_path / "r.html",
    )
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "r.html").read_text()
    assert "data:image/png;base64" in page and "op coverage" in proc.stdout.lower()
