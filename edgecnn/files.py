"""The one way edgecnn writes a file: a unique temporary name in the destination folder, fsync,
then an atomic rename. A reader never sees a half-written model, report, plot or export, and an
interrupted write leaves nothing behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from edgecnn.errors import InputError

FILE_MODE = 0o644
_TEMPS: set = set()  # temporary files and folders this process made and has not removed yet


def track_temp(path) -> str:
    """Remember a temporary path: if an interrupt cuts a cleanup short (Ctrl-C or SIGTERM can land
    inside a ``finally``), the exit hook removes it."""
    _TEMPS.add(str(path))
    return str(path)


def remove_temp(path) -> None:
    import shutil

    p = str(path)
    try:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            os.unlink(p)
    except OSError:
        pass
    _TEMPS.discard(p)


def _remove_all_temps() -> None:
    for p in list(_TEMPS):
        remove_temp(p)


import atexit  # noqa: E402

atexit.register(_remove_all_temps)


def atomic_write(path, data: bytes, mode: int = FILE_MODE) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it; returns the path."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"output folder does not exist: {folder}")
    if p.is_dir():
        raise InputError(f"{p} is a folder; give a file name")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=str(folder))
    track_temp(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
        _TEMPS.discard(tmp)
    except BaseException:
        remove_temp(tmp)
        raise
    return p


def json_default(o):
    """``json.dumps`` default for numpy scalars and arrays (and anything else as its string)."""
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_json(path, obj) -> Path:
    """``obj`` as indented JSON, written atomically."""
    return atomic_write(path, (json.dumps(obj, indent=2, default=json_default) + "\n").encode("utf-8"))


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(child: Path, folder: Path) -> bool:
    try:
        return folder.is_dir() and child.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def check_clashes(outputs: dict, inputs: dict) -> None:
    """Before any work: no output may be one of the inputs (same file, same inode, or inside an input
    folder), and no two outputs may be the same file. ``outputs`` and ``inputs`` map an option name
    (``--output``) to a path or None. A clash is exit 2 naming both."""
    outs = [(k, Path(v)) for k, v in outputs.items() if v is not None]
    ins = [(k, Path(v)) for k, v in inputs.items() if v is not None and str(v) and "://" not in str(v) and not str(v).isdigit()]
    for ko, po in outs:
        for ki, pi in ins:
            if _same(po, pi) or (po.exists() and _inside(po, pi)):
                raise InputError(f"{ko} {po} would overwrite {ki} {pi}: choose another {ko}")
    for i, (ka, pa) in enumerate(outs):
        for kb, pb in outs[i + 1 :]:
            if _same(pa, pb):
                raise InputError(f"{ka} and {kb} are the same file ({pa}): give each its own path")
