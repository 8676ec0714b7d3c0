"""The README is the contract and the docs site says the rest: a README a newcomer reads in five minutes,
a site that builds with --strict, benchmark tables generated from the results, never typed by hand."""

import importlib.util
import re
import subprocess
import sys

import pytest
from helpers import ROOT


def test_the_readme_is_short_and_keeps_the_two_commands_and_the_device_blocks():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert '.venv/bin/pip install -e ".[all]" && .venv/bin/edgecnn demo' in text and "bash .ci/run" in text
    for block in ("workstation", "device"):
        out = subprocess.run([sys.executable, str(ROOT / ".ci" / "pi" / "readme_block.py"), block], capture_output=True, text=True)
        assert out.returncode == 0 and "edgecnn" in out.stdout, out.stderr


def test_every_page_is_in_the_site_and_every_link_in_the_readme_resolves():
    nav = re.findall(r":\s*([\w-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert sorted(nav) == sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    for link in re.findall(r"\]\(([^)#]+\.md)\)", (ROOT / "README.md").read_text()):
        assert (ROOT / link).is_file(), link


def test_the_benchmark_page_is_what_the_results_give():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import PAGE, render

    assert PAGE.read_text() == render(), "docs/benchmarks.md is out of date: run python benchmarks/report.py"


def test_the_site_builds_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs and mkdocs-material are not installed (the [dev] extra has them)")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rpi5-bundle" in (tmp_path / "site" / "device" / "index.html").read_text()  # the README's blocks, included
