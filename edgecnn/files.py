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


def atomic_write(path, data: bytes, mode: int = FILE_MODE) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it; returns the path."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"output folder does not exist: {folder}")
    if p.is_dir():
        raise InputError(f"{p} is a folder; give a file name")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=str(folder))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
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
