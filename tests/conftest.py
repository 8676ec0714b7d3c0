import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Tests never touch the user's data folder (cached models, gallery): one private folder per run.
if "EDGECNN_HOME" not in os.environ:
    import tempfile

    os.environ["EDGECNN_HOME"] = tempfile.mkdtemp(prefix="edgecnn-test-home-")

# Real model files from packages the project does not install (.ci/fetch-corpus unpacks them here).
_CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".corpus")
if "EDGECNN_CORPUS" not in os.environ and os.path.isdir(_CORPUS):
    os.environ["EDGECNN_CORPUS"] = _CORPUS

from helpers import FACES, make_clip, run_cli  # noqa: E402


@pytest.fixture
def keras_session():
    import keras

    yield
    keras.backend.clear_session()


@pytest.fixture(scope="session")
def digits_lenet(tmp_path_factory):
    """LeNet-5 trained on scikit-learn digits, saved as .keras, with the train/test images on disk."""
    import cv2

    from edgecnn.models.train.digits import train_lenet_digits

    folder = tmp_path_factory.mktemp("digits")
    model, test, acc = train_lenet_digits(epochs=8)
    path = folder / "lenet_digits.keras"
    model.save(path)
    from edgecnn.models.train.digits import digits_split

    train, _ = digits_split()
    for name, data, limit in (("train", train, 300), ("test", test, None)):
        for i, (img, label) in enumerate(zip(data.images[:limit] if limit else data.images, data.labels)):
            d = folder / name / str(label)
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{i:04d}.png"), img)
    return {"keras": path, "train": folder / "train", "test": folder / "test", "float_acc": acc, "folder": folder}


@pytest.fixture(scope="session")
def photo_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "photos.mp4")


@pytest.fixture(scope="session")
def mnv2_int8(tmp_path_factory, photo_clip):
    """The issue's proof 3 model, made through the real CLI (calibrated on a video)."""
    import json

    out = tmp_path_factory.mktemp("mnv2") / "m.tflite"
    proc = run_cli(
        "convert",
        "mobilenet_v2",
        "--alpha",
        "0.35",
        "--input-size",
        "96",
        "--precision",
        "int8",
        "--target",
        "cpu",
        "--calibration",
        photo_clip,
        "--samples",
        "40",
        "--output",
        out,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


@pytest.fixture(scope="session")
def mnv2_int8_file(tmp_path_factory, photo_clip):
    """The same int8 MobileNetV2 (alpha 0.35, 96 px, calibrated on the video) for the tests that only
    need the file: converted in this process, without the per-layer analysis and the latency run
    (14 s against the CLI's 27: the default test run's largest setup). The CLI's own path is
    tested with :func:`mnv2_int8`."""
    from edgecnn.converters.convert import ConvertOptions, convert

    out = tmp_path_factory.mktemp("mnv2_file") / "m.tflite"
    rep = convert(
        "mobilenet_v2",
        ConvertOptions(
            precision="int8",
            target="cpu",
            output=str(out),
            calibration=str(photo_clip),
            samples=16,
            held_out=8,
            debug_layers=False,
            measure_latency=False,
            builder_options={"alpha": 0.35, "input_size": 96},
        ),
    )
    return out, rep


@pytest.fixture(scope="session")
def lenet_int8_uint8(tmp_path_factory, digits_lenet):
    """Trained LeNet-5 as a full-integer model with uint8 input/output (the Coral recipe)."""
    from edgecnn.converters.convert import ConvertOptions, convert

    out = tmp_path_factory.mktemp("lenet") / "lenet_int8.tflite"
    rep = convert(
        str(digits_lenet["keras"]),
        ConvertOptions(
            precision="int8",
            io="uint8",
            output=str(out),
            calibration=str(digits_lenet["train"]),
            samples=200,
            labels=[str(i) for i in range(10)],
            debug_layers=False,
        ),
    )
    return out, rep


@pytest.fixture(scope="session")
def facenet_models(tmp_path_factory):
    """The real FaceNet frozen graph converted to fp32 (reference), fp16, dynamic range and int8."""
    from edgecnn.converters.convert import ConvertOptions, convert
    from edgecnn.workstation.facenet import facenet_graph

    folder = tmp_path_factory.mktemp("facenet")
    out = {}
    for precision, samples in (("fp32", 8), ("fp16", 8), ("dynamic", 8), ("int8", 100)):
        path = folder / f"facenet_{precision}.tflite"
        rep = convert(
            str(facenet_graph()), ConvertOptions(precision=precision, output=str(path), calibration="bundled:faces", samples=samples, debug_layers=False)
        )
        out[precision] = (path, rep)
    return out


@pytest.fixture(scope="session")
def face_images():
    import numpy as np
    from skimage import data

    from edgecnn.device.faces import read_image

    imgs = {f: read_image(FACES / f"{f}.jpg") for f in ("obama", "obama2", "obama3", "biden")}
    imgs["astronaut"] = np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # Eileen Collins, scikit-image
    return imgs


@contextlib.contextmanager
def _tmpfs(mnt: Path, options: str):
    """A file system of our own at ``mnt`` (tmpfs, as root), unmounted after."""
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 400 KB disk: the one that fills half-way through a write (see :func:`fill`)."""
    with _tmpfs(tmp_path / "small", "size=400k") as mnt:
        yield mnt


@pytest.fixture
def read_only_folder(tmp_path):
    with _tmpfs(tmp_path / "ro", "ro,size=64k") as mnt:
        yield mnt


@pytest.fixture
def sigint_reaches_python():
    """A shell's background job starts with SIGINT ignored, and Python then leaves it ignored (no
    KeyboardInterrupt, and interrupt_main does nothing): the tests that send SIGINT on purpose take it
    back, for this process and the ones it starts (an exec'd child resets a handled signal to
    its default, while an ignored one stays ignored)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)
