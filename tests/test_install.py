"""Both install routes give working edgecnn.converters / .targets / .calibration imports."""

import subprocess
import sys
import venv
from pathlib import Path

from conftest import ROOT

PROBE = (
    "import edgecnn, edgecnn.converters, edgecnn.targets, edgecnn.calibration, os;"
    "print(os.path.realpath(edgecnn.__file__));"
    "print(os.path.realpath(edgecnn.converters.__file__))"
)


def test_current_install_imports_all_four_rooms(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True)
    pkg, conv = out.stdout.split()
    assert Path(conv).parent.name == "converters"


def test_wheel_install_into_fresh_venv_imports_all_four(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(pip + ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = wheels.glob("edgecnn-*.whl")
    subprocess.run(pip + ["--python", str(py), "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True, cwd=tmp_path)
    # the wheel is installed without dependencies: let the fresh venv see this environment's numpy etc.
    # (a plain path line; the editable-install hooks of this environment stay inactive there)
    import numpy

    site = next(env_dir.glob("lib/python*/site-packages"))
    (site / "deps.pth").write_text(str(Path(numpy.__file__).resolve().parents[1]) + "\n")
    out = subprocess.run([str(py), "-c", PROBE], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    pkg, conv = out.stdout.split()
    site = str(env_dir)
    assert pkg.startswith(site) and conv.startswith(site), out.stdout  # real files in site-packages, not links to the repo
    prof = list((Path(conv).parents[1] / "targets").glob("profiles/*.toml"))
    assert prof or not list((ROOT / "targets" / "profiles").glob("*.toml"))
