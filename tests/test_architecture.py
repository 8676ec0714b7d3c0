"""The rules of docs/architecture.md, checked by walking every import in the package (lazy imports
inside functions included): no room imports from a room to its right, and the device rooms never
import the TensorFlow side."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# import name prefix -> folder in the repository (the package-dir mapping of pyproject.toml)
FOLDERS = {"edgecnn.calibration": "calibration", "edgecnn.converters": "converters", "edgecnn.targets": "targets", "edgecnn": "edgecnn"}

ORDER = ["low", "calibration", "models", "targets", "device", "converters", "app"]
TF_SIDE = ("edgecnn.models", "edgecnn.converters")
# The package's face re-exports the device runtime (``from edgecnn import Model``) on first use, so that
# ``import edgecnn`` stays as cheap as a low room: that one arrow is the public API, not a dependency.
FACADE = {("edgecnn", "edgecnn.device"), ("edgecnn", "edgecnn.device.runtime")}


def room_of(module: str) -> str | None:
    """A module's room is its folder: ``edgecnn/core/`` low, ``edgecnn/device/`` device, ``edgecnn/workstation/``
    and ``edgecnn/cli/`` app, and the top-level rooms by their own folders. The package's ``__init__`` is low."""
    parts = module.split(".")
    if parts[0] != "edgecnn":
        return None
    if len(parts) == 1 or parts[1] == "core":
        return "low"
    if parts[1] == "device":
        return "device"
    if parts[1] in ("workstation", "cli"):
        return "app"
    return parts[1] if parts[1] in ("calibration", "models", "targets", "converters") else None


def package_modules() -> dict[str, Path]:
    mods = {}
    for prefix, folder in FOLDERS.items():
        base = ROOT / folder
        for f in base.rglob("*.py"):
            rel = f.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if prefix == "edgecnn" and parts and parts[0] in ("calibration", "converters", "targets"):
                continue
            mods[name] = f
    return mods


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            for a in node.names:  # ``from edgecnn import models`` imports the submodule
                if f"{base}.{a.name}" in known:
                    out.add(f"{base}.{a.name}")
    return {m for m in out if m == "edgecnn" or m.startswith("edgecnn.")}


MODULES = package_modules()


def test_every_module_has_a_room():
    assert len(MODULES) > 60
    assert [m for m in MODULES if room_of(m) is None] == []


def test_imports_point_left_or_down_only():
    bad = []
    for name, path in MODULES.items():
        mine = ORDER.index(room_of(name))
        for imp in imports_of(name, path, set(MODULES)):
            theirs = room_of(imp)
            assert theirs is not None, f"{name} imports {imp}, which is not a module of the package"
            if ORDER.index(theirs) > mine and (name, imp) not in FACADE:
                bad.append(f"{name} ({room_of(name)}) -> {imp} ({theirs})")
    assert bad == []


@pytest.mark.parametrize("room", ["low", "calibration", "targets", "device"])
def test_device_rooms_never_import_the_tensorflow_side(room):
    offenders = [
        (name, imp) for name, path in MODULES.items() if room_of(name) == room for imp in imports_of(name, path, set(MODULES)) if imp.startswith(TF_SIDE)
    ]
    assert offenders == []


def test_walker_sees_lazy_and_relative_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from edgecnn.converters.convert import convert\nfrom edgecnn import models\n")
    assert imports_of("edgecnn.device.runtime", f, set(MODULES)) == {"edgecnn.converters.convert", "edgecnn", "edgecnn.models"}
    assert room_of("edgecnn.converters.convert") == "converters"


def test_no_package_file_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_the_rooms_are_what_ls_shows():
    """``ls edgecnn/`` shows the rooms: no module lies loose beside them."""
    entries = {p.name for p in (ROOT / "edgecnn").iterdir() if p.name != "__pycache__"}
    assert entries == {"__init__.py", "core", "device", "workstation", "cli", "models", "data"}
    for room in ("core", "device", "workstation"):
        assert all(room_of(m) is not None for m in MODULES if m.startswith(f"edgecnn.{room}."))


def test_the_public_names_are_the_modules_in_their_rooms():
    import importlib

    import edgecnn

    for name, real in edgecnn.PUBLIC.items():
        alias = importlib.import_module(f"edgecnn.{name}")
        assert alias is importlib.import_module(real) and alias.__spec__.name == real and getattr(edgecnn, name) is alias
    from edgecnn import Model
    from edgecnn.runtime import Model as Same

    assert Model is Same


def test_no_two_modules_import_each_other():
    """No circles between modules (lazy imports included; a package's ``__init__`` re-exporting its own
    modules aside): benchmark and benchmark_ray imported each other before the cells got their own module."""
    mods = {m for m, p in MODULES.items() if p.name != "__init__.py"}
    graph = {m: {i for i in imports_of(m, MODULES[m], set(MODULES)) if i in mods and i != m} for m in mods}

    def reaches(start, goal, seen):
        return any(n == goal or (n not in seen and not seen.add(n) and reaches(n, goal, seen)) for n in graph[start])

    circles = sorted(f"{a} <-> {b}" for a in mods for b in graph[a] if a < b and reaches(b, a, set()))
    assert circles == []
