"""The TensorFlow-free device runtime, delegates with CPU fallback, and malformed model files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import FACES, assert_one_line_error, carried_model, run_cli, run_without_tf

from edgecnn.device.detectors import find_model_file


@pytest.mark.device
def test_device_modules_run_real_models_without_tensorflow(lenet_int8_uint8, tmp_path):
    model_path, _ = lenet_int8_uint8
    proc = run_without_tf(
        """
        import sys, json
        import numpy as np, cv2
        import edgecnn, edgecnn.device.runtime, edgecnn.calibration, edgecnn.targets, edgecnn.device.profiling, edgecnn.core.detection
        import edgecnn.device.detectors, edgecnn.device.faces, edgecnn.core.tflite_file, edgecnn.cli, edgecnn.targets.edgetpu, edgecnn.calibration.datasets
        from edgecnn.device.runtime import Model
        from edgecnn.device.detectors import FaceDetector
        m = Model(sys.argv[1])
        digit = np.zeros((32, 32), np.uint8); cv2.line(digit, (16, 4), (16, 28), 255, 3)   # a drawn "1"
        probs = m.predict(digit)
        det = FaceDetector("blazeface")
        from skimage import data
        faces = det.detect(np.ascontiguousarray(data.astronaut()[:, :, ::-1]))
        from edgecnn.cli import main
        rc = main(["profile", sys.argv[1], "--runs", "5", "--json"])
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        assert not [m for m in sys.modules if m.startswith(("edgecnn.models", "edgecnn.converters"))]  # the TF rooms stay shut
        print(json.dumps({"runtime": m.describe()["runtime"], "argmax": int(probs.argmax()), "faces": len(faces), "rc": rc}))
        """,
        model_path,
    )
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["runtime"].startswith("ai_edge_litert") and last["faces"] == 1 and last["rc"] == 0
    assert last["argmax"] == 1


def test_predict_handles_preprocessing_quantization_and_batches(lenet_int8_uint8, digits_lenet):
    import keras

    from edgecnn.device.runtime import Model
    from edgecnn.models.train.digits import DIGITS_SPEC, digits_split

    path, _ = lenet_int8_uint8
    m = Model(path)
    assert m.input_dtype == np.uint8 and m.labels == [str(i) for i in range(10)]
    _, test = digits_split()
    imgs = test.images[:64]
    batch = m.predict_batch(list(imgs))
    assert batch.shape == (64, 10)
    one = m.predict(imgs[0])
    np.testing.assert_allclose(one, batch[0])
    prepared = m.run(DIGITS_SPEC.apply(imgs[0]))[0]  # an already-prepared float tensor goes to run
    np.testing.assert_allclose(prepared, one)
    ref = keras.models.load_model(digits_lenet["keras"]).predict(DIGITS_SPEC.apply_batch(imgs), verbose=0)
    assert (ref.argmax(1) == batch.argmax(1)).mean() >= 0.95
    assert np.abs(ref - batch).max() < 0.1  # dequantized outputs are probabilities like the float model's


def test_a_quantized_input_is_prepared_in_one_lookup_with_the_same_values(lenet_int8_uint8):
    """Into its buffer, a uint8 or int8 input is prepared already quantized, through a table of what
    normalising and then quantizing makes of each pixel value: the same bits as the float tensor that
    set_input quantizes, in every normalisation (one value or per channel), in the ring buffers a
    camera's reader prepares into, and the same outputs from predict(frame)."""
    from edgecnn.core.preprocess import PreprocessSpec
    from edgecnn.device.detectors import _Stages
    from edgecnn.device.runtime import Model

    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (90, 120, 3), np.uint8)
    lenet, _ = lenet_int8_uint8
    every = {n: np.resize(np.arange(256, dtype=np.uint8), (n, n, 3)) for n in (32, 224)}  # input-sized: every entry of the table
    effnet = carried_model("efficientnet_lite0.tflite")  # uint8, 224x224x3
    cases = [
        (lenet, PreprocessSpec.for_input(32, 32, 1, kind, color="gray", resize=r)) for kind in ("unit", "symmetric", "raw") for r in ("stretch", "letterbox")
    ]
    cases += [(effnet, PreprocessSpec.for_input(224, 224, 3, kind, resize="letterbox")) for kind in ("imagenet", "symmetric")]
    for path, spec in cases:
        m = Model(path, preprocess=spec)
        (s, z), dtype = m.inputs[0]["quantization"], m.input_dtype
        info = np.iinfo(dtype)
        for img in (every[spec.height], frame):
            f = spec.apply(img)
            by_hand = np.clip(np.rint(f * np.float32(1.0 / s) + np.float32(z)), info.min, info.max).astype(dtype)
            x = m.prepare(img, reuse=True)
            assert x.dtype == dtype and np.array_equal(x, by_hand), (path.name, spec)
        assert m.__dict__["_plan"][1] is not None  # the table path, not the float tensor's
        assert np.array_equal(m.predict(frame), m.run(f)[0])  # set_input quantizes the float tensor alike
        stages = _Stages()
        stages.model = m
        ring = stages.input_buffer()  # the camera's reader hands on pixels; the worker quantizes them in place
        pixels, _ = stages.prepare(frame, out=ring)
        assert pixels is ring and ring.dtype == np.uint8
        m.set_pixels(ring)
        assert np.array_equal(m.interpreter.get_tensor(m.inputs[0]["index"])[0], by_hand), (path.name, spec)
        m.interpreter.set_tensor(m.inputs[0]["index"], np.zeros_like(by_hand)[None])
        m.load(frame)
        assert np.array_equal(m.interpreter.get_tensor(m.inputs[0]["index"])[0], by_hand), (path.name, spec)
        assert m.prepare(frame, out=np.empty(f.shape, np.float32)).dtype == np.float32  # a caller's float buffer stays float
    # raw pixels into an int8 input: the usual shift by 128, by table too
    spec = PreprocessSpec(32, 32, 1, color="gray", normalize="pixels")
    m = Model(lenet, preprocess=spec)
    m.inputs[0] = {**m.inputs[0], "dtype": np.int8}  # as an int8 input would read
    m.__dict__.pop("_plan", None)
    x = m.prepare(frame, reuse=True)
    assert x.dtype == np.int8 and np.array_equal(x, (spec.apply(frame).astype(np.int16) - 128).astype(np.int8))


def test_float_normalisation_by_table_gives_numpys_values_for_every_pixel():
    """The float input's normalisation is one table lookup (cv2.LUT): for every uint8 value, one value or
    per channel, gray or colour, the same float32 bits as numpy's multiply and add."""
    from edgecnn.core.preprocess import PreprocessSpec

    every = np.resize(np.arange(256, dtype=np.uint8), (16, 16, 3))
    for kind, channels in [("unit", 1), ("unit", 3), ("symmetric", 3), ("raw", 3), ("imagenet", 3)]:
        spec = PreprocessSpec.for_input(16, 16, channels, kind, color="gray" if channels == 1 else "rgb")
        small = every[:, :, :channels]
        a, b = spec.affine()
        by_numpy = np.multiply(small, a, dtype=np.float32, casting="unsafe") + b
        out = np.full(small.shape, np.nan, np.float32)
        assert spec.normalize_pixels(small, out) is out and np.array_equal(out, by_numpy), (kind, channels)


def test_a_frame_is_prepared_straight_into_the_input_tensor(monkeypatch):
    """predict(frame), load and set_pixels write the float input in place: the same values as
    set_input(prepare(frame)), no tensor copied in (set_tensor is never called), and the interpreter
    still runs (no array left pointing into it), on BlazeFace's float input, letterboxed."""
    import cv2

    from edgecnn.device.detectors import open_detector

    det = open_detector("blazeface", threads=1)
    m = det.model
    frame = cv2.imread(str(FACES / "obama.jpg"))
    expected = m.preprocess.apply(frame)
    reference = m.run(expected)  # a prepared float tensor goes in by set_input
    copies = []
    real = m.interpreter.set_tensor
    monkeypatch.setattr(m.interpreter, "set_tensor", lambda *a: (copies.append(a[0]), real(*a)))
    out = m.predict(frame)
    assert copies == [] and np.array_equal(m.interpreter.get_tensor(m.inputs[0]["index"])[0], expected)
    for a, b in zip(out, reference):
        assert np.array_equal(a, b)
    faces = det.detect(frame)
    assert faces and copies == []
    pixels, tr = det.prepare(frame, out=det.input_buffer())
    assert det.infer(frame, pixels, tr)[0].box == faces[0].box and copies == []
    from edgecnn.core.errors import InputError

    for wrong in (frame, pixels.astype(np.float32), pixels[:64]):  # a frame, a float tensor, a cut: one clear error
        with pytest.raises(InputError, match="set_pixels takes uint8 pixels of shape"):
            m.set_pixels(wrong)


def test_external_model_needs_explicit_preprocessing_and_gets_it():
    from edgecnn.core.preprocess import PreprocessSpec
    from edgecnn.device.runtime import Model

    path = find_model_file("blazeface")
    m = Model(path, preprocess=PreprocessSpec.for_input(128, 128, 3, "symmetric"))
    assert not m.describe()["made_by_edgecnn"]
    outs = m.predict(np.zeros((200, 300, 3), np.uint8))
    assert [o.shape for o in outs] == [(896, 16), (896, 1)]


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="threads' CPU comes from Linux's /proc")
def test_an_interpreters_own_thread_pool_is_found_and_its_cpu_counted():
    """With 2+ threads XNNPACK runs part of every invoke on a pool of its own, off the calling thread's
    clock: the camera counts that CPU as the invoke's, not as its own overhead (it was, 0.8 ms a frame)."""
    from edgecnn.core.preprocess import PreprocessSpec
    from edgecnn.device.runtime import Model

    spec = PreprocessSpec.for_input(128, 128, 3, "symmetric")
    one = Model(find_model_file("blazeface"), threads=1, preprocess=spec)
    two = Model(find_model_file("blazeface"), threads=2, preprocess=spec)
    twin = two.twin(2)
    assert one.pool_threads == set() and one.pool_cpu_seconds() == 0.0
    assert len(two.pool_threads) == 1 and len(twin.pool_threads) == 1 and two.pool_threads != twin.pool_threads
    x = two.prepare(np.zeros((200, 300, 3), np.uint8))
    before, caller = two.pool_cpu_seconds(), 0.0
    for _ in range(60):
        two.set_input(x)
        two.invoke()
        caller += two.invoke_cpu_seconds
    assert two.pool_cpu_seconds() - before > 0.25 * caller > 0  # the pool ran its share of the work
    assert twin.pool_cpu_seconds() < 0.05  # the twin's pool idled: its interpreter never ran


def test_absent_delegate_falls_back_with_one_line_or_fails_strict(mnv2_int8_file, tmp_path):
    out, _ = mnv2_int8_file
    # an int8 file edgetpu_compiler never made runs on the CPU whatever is attached: said, never reported as edgetpu
    proc = run_cli("profile", out, "--target", "coral", "--runs", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not compiled for the Edge TPU" in lines[0] and "edgetpu_compiler -s m.tflite" in lines[0], lines
    assert json.loads(proc.stdout)["delegate"] == "xnnpack"
    assert_one_line_error(run_cli("profile", out, "--target", "coral", "--strict"), 2, "not compiled for the Edge TPU")
    # a delegate library that is not there: one line naming it and how to get it, then the CPU
    proc = run_cli("profile", out, "--target", "android-gpu", "--runs", "3", "--json", env={"EDGECNN_GPU_DELEGATE": str(tmp_path / "libnone.so")})
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 0 and len(lines) == 1 and "libnone.so (not found)" in lines[0] and "running on the CPU" in lines[0], lines
    assert_one_line_error(
        run_cli("profile", out, "--target", "android-gpu", "--strict", env={"EDGECNN_GPU_DELEGATE": str(tmp_path / "libnone.so")}), 2, "libnone.so"
    )
    # a library that exists but is no delegate plugin: AttributeError inside load_delegate, no __del__ noise
    proc = run_cli("profile", out, "--target", "android-gpu", "--runs", "3", "--json", env={"EDGECNN_GPU_DELEGATE": "/lib/x86_64-linux-gnu/libm.so.6"})
    assert proc.returncode == 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not a delegate plugin" in lines[0] and "WebGPU" in lines[0], proc.stderr
    # this machine has no Vulkan adapter, so LiteRT's WebGPU accelerator cannot take over either
    assert json.loads(proc.stdout)["delegate"] == "xnnpack"
    assert_one_line_error(run_cli("profile", out, "--target", "android-gpu", "--strict"), 2, "WebGPU")


@pytest.mark.slow  # a TensorFlow interpreter in a child process beside LiteRT's
def test_runtime_order_and_forced_runtime(lenet_int8_uint8):
    code = "import sys; from edgecnn.device.runtime import Model; print(Model(sys.argv[1]).describe()['runtime'])"
    first = subprocess.run([sys.executable, "-c", code, str(lenet_int8_uint8[0])], capture_output=True, text=True)
    assert first.stdout.startswith("ai_edge_litert")
    env = {**__import__("os").environ, "EDGECNN_RUNTIME": "tensorflow"}
    forced = subprocess.run([sys.executable, "-c", code, str(lenet_int8_uint8[0])], capture_output=True, text=True, env=env)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith("tensorflow")


@pytest.mark.parametrize(
    "content,expect",
    [
        (b"", "too small"),
        (b"hello, I am a text file pretending to be a model\n" * 3, "not a TFLite model"),
        (None, "truncated or damaged"),  # the real model cut in half
        (b"\x10\x00\x00\x00TFL3" + b"\xff" * 40, "points past its end"),  # the identifier, then offsets that point nowhere
    ],
)
def test_malformed_model_files_are_exit_2_not_a_crash(tmp_path, mnv2_int8_file, content, expect):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(mnv2_int8_file[0].read_bytes()[: len(mnv2_int8_file[0].read_bytes()) // 2] if content is None else content)
    err = assert_one_line_error(run_cli("profile", bad), 2)
    assert expect in err and str(bad) in err, err


def test_missing_and_folder_model_and_bad_threads(tmp_path, mnv2_int8_file):
    assert_one_line_error(run_cli("profile", tmp_path / "nope.tflite"), 2, "not found")
    assert_one_line_error(run_cli("profile", tmp_path), 2, "folder")
    for bad in ("0", "a", "-1", "1,,2"):
        assert_one_line_error(run_cli("profile", mnv2_int8_file[0], "--threads", bad), 2, "--threads")
    assert_one_line_error(run_cli("profile", mnv2_int8_file[0], "--runs", "0"), 2, "--runs")
    assert_one_line_error(run_cli("profile", mnv2_int8_file[0], "--target", "tpu9"), 2, "unknown target")


def test_parser_agrees_with_the_interpreter(mnv2_int8_file):
    from edgecnn.device.runtime import Model

    m = Model(mnv2_int8_file[0])
    info = m.file
    ops = m.interpreter._get_ops_details()[: len(info.operators)]
    assert [o["op_name"] for o in ops] == [op.name for op in info.operators]
    det = m.interpreter.get_tensor_details()
    for t in info.tensors[:50]:
        assert det[t.index]["name"] == t.name and list(det[t.index]["shape"]) == t.shape
