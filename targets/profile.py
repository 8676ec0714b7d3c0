"""Target profiles: one TOML file per device class, the single definition that the converter (which
recipe) and the runtime (which delegate, how many threads) both read.

Built-in profiles live in ``profiles/``; users add a target by dropping a ``NAME.toml`` into
``~/.config/edgecnn/targets/`` or a folder named by ``EDGECNN_TARGETS``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgecnn.core.errors import InputError

BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"
PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int16x8")
IO_TYPES = ("float", "int8", "uint8")
DELEGATES = ("xnnpack", "gpu", "edgetpu", "none")


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    delegate: str = "xnnpack"
    precision: str = "fp32"
    io: str = "float"
    threads: int = 0
    hardware: str = ""
    why: str = ""
    delegate_library: tuple = ()
    delegate_env: str | None = None
    get_delegate: str = ""
    compile: str | None = None
    predict: dict = field(default_factory=dict)
    source: str = ""

    def resolved_threads(self) -> int:
        return self.threads if self.threads > 0 else (os.cpu_count() or 1)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["delegate_library"] = list(self.delegate_library)
        return d


def _search_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("EDGECNN_TARGETS")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs.append(Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "edgecnn" / "targets")
    dirs.append(BUILTIN_DIR)
    return dirs


def _load_file(path: Path) -> TargetProfile:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"target profile {path} is not valid TOML: {exc}") from None
    known = set(TargetProfile.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise InputError(f"target profile {path} has unknown keys {sorted(unknown)}; valid keys: {sorted(known - {'source'})}")
    if "name" not in data or "description" not in data:
        raise InputError(f"target profile {path} needs at least 'name' and 'description'")
    if data.get("precision", "fp32") not in PRECISIONS:
        raise InputError(f"target profile {path}: precision must be one of {', '.join(PRECISIONS)}")
    if data.get("io", "float") not in IO_TYPES:
        raise InputError(f"target profile {path}: io must be one of {', '.join(IO_TYPES)}")
    if data.get("delegate", "xnnpack") not in DELEGATES:
        raise InputError(f"target profile {path}: delegate must be one of {', '.join(DELEGATES)}")
    data["delegate_library"] = tuple(data.get("delegate_library", ()))
    return TargetProfile(**data, source=str(path))


def list_targets() -> dict[str, TargetProfile]:
    """Every profile by name; a user's file shadows a built-in one of the same name."""
    found: dict[str, TargetProfile] = {}
    for d in reversed(_search_dirs()):
        if d.is_dir():
            for f in sorted(d.glob("*.toml")):
                prof = _load_file(f)
                found[prof.name] = prof
    order = ["cpu", "rpi4", "rpi5", "android-gpu", "coral"]
    return dict(sorted(found.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def load_target(name: "str | TargetProfile | None") -> TargetProfile:
    """The profile called ``name`` (``None`` means ``cpu``); an unknown name lists the known ones."""
    if isinstance(name, TargetProfile):
        return name
    name = name or "cpu"
    if name.endswith(".toml") and Path(name).is_file():
        return _load_file(Path(name))
    targets = list_targets()
    if name not in targets:
        raise InputError(f"unknown target {name!r}; known targets: {', '.join(targets)} (add one as a TOML file, see: edgecnn targets)")
    return targets[name]
