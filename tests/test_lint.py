"""ruff over the tree, with the rules pyproject.toml sets: the formatter's layout, and the linter's
unused or undefined names, import order, likely bugs (bugbear), line length."""

import importlib.util
import subprocess
import sys

import pytest
from helpers import ROOT


def test_ruff_check_is_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (the [dev] extra has it)")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(ROOT)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-1000:]


def test_ruff_format_leaves_every_file_as_it_is():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (the [dev] extra has it)")
    proc = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", str(ROOT)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, "run: ruff format .\n" + proc.stdout[-4000:] + proc.stderr[-1000:]
