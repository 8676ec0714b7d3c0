"""Every install route gives one working ``edgecnn`` package with all its rooms: the editable install
this suite runs in, the wheel and the sdist (built here, contents checked, installed into fresh
virtual environments)."""

import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

PROBE = (
    "import os, edgecnn, edgecnn.converters, edgecnn.targets, edgecnn.calibration, edgecnn.models, edgecnn.cli;"
    "from edgecnn.targets import list_targets;"
    "print(os.path.realpath(edgecnn.__file__)); print(os.path.realpath(edgecnn.converters.__file__));"
    "print(len(list_targets()))"
)
ROOMS = (
    "edgecnn/converters/convert.py",
    "edgecnn/calibration/datasets.py",
    "edgecnn/targets/profile.py",
    "edgecnn/cli/__main__.py",
    "edgecnn/models/train/yolo.py",
    "edgecnn/device/runtime.py",
)
DATA = ("edgecnn/targets/profiles/cpu.toml", "edgecnn/targets/ops/xnnpack.toml", "edgecnn/data/faces/obama.jpg", "edgecnn/models/catalog.json")


def test_editable_install_maps_each_room_to_its_one_folder(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True)
    pkg, conv, n_targets = out.stdout.split()
    assert Path(conv) == ROOT / "converters" / "__init__.py"  # the top-level folder itself: one identity
    assert Path(pkg) == ROOT / "edgecnn" / "__init__.py"
    assert int(n_targets) >= 5
    assert not [p for p in (ROOT / "edgecnn").iterdir() if p.is_symlink()]


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)], capture_output=True, text=True, cwd=out
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = out.glob("edgecnn-*.whl")
    (sdist,) = out.glob("edgecnn-*.tar.gz")
    return wheel, sdist


def test_wheel_holds_every_room_and_its_data_and_no_tests(dists):
    wheel, _ = dists
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(ROOMS + DATA) <= names
    top = {n.split("/")[0] for n in names if not n.startswith("edgecnn-")}
    assert top == {"edgecnn"}  # one top-level name in site-packages
    assert not [n for n in names if n.startswith(("converters/", "targets/", "calibration/", "tests/"))]


def test_sdist_holds_the_sources_the_tests_and_the_docs(dists):
    _, sdist = dists
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for need in (
        "pyproject.toml",
        "README.md",
        "MANIFEST.in",
        "tests/conftest.py",
        "tests/helpers.py",
        "tests/test_install.py",
        "docs/architecture.md",
        "converters/convert.py",
        "targets/profiles/cpu.toml",
        "edgecnn/cli/__init__.py",
        "benchmarks/camera.py",
        ".ci/device-stage",
        ".ci/pi/chroot-run",
        ".ci/pi/cpuinfo-cortex-a76",
        "targets/predict.py",
    ):
        assert need in names, need


def _fresh_venv(tmp_path, name):
    env_dir = tmp_path / name
    venv.EnvBuilder(with_pip=False).create(env_dir)
    # installed without dependencies: the fresh venv sees this environment's numpy etc. through a path line
    import numpy

    site = next(env_dir.glob("lib/python*/site-packages"))
    (site / "deps.pth").write_text(str(Path(numpy.__file__).resolve().parents[1]) + "\n")
    return env_dir, env_dir / "bin" / "python"


@pytest.mark.parametrize("which", ["wheel", pytest.param("sdist", marks=pytest.mark.slow)])
def test_installed_dist_imports_every_room_from_site_packages(dists, tmp_path, which):
    dist = dists[0] if which == "wheel" else dists[1]
    env_dir, py = _fresh_venv(tmp_path, which)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-build-isolation", str(dist)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    out = subprocess.run([str(py), "-c", PROBE], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    pkg, conv, n_targets = out.stdout.split()
    assert pkg.startswith(str(env_dir)) and conv.startswith(str(env_dir)), out.stdout  # real files in site-packages
    assert int(n_targets) >= 5  # the TOML profiles came along as package data
