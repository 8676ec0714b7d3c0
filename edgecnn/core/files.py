"""The one way edgecnn writes a file: a unique temporary name in the destination folder, fsync,
then an atomic rename. A reader never sees a half-written model, report, plot or export, and an
interrupted write leaves nothing behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from edgecnn.core.errors import EdgecnnError, InputError, check_stop

FILE_MODE = 0o644
_TEMPS: set = set()  # temporary files and folders this process made and has not removed yet


def track_temp(path) -> str:
    """Remember a temporary path: if an interrupt cuts a cleanup short (Ctrl-C or SIGTERM can land
    inside a ``finally``), the exit hook removes it."""
    _TEMPS.add(str(path))
    return str(path)


_CRITICAL = [0]  # > 0 while a temporary path is being made and recorded
_PENDING: list = []  # a signal that arrived meanwhile


def defer_signal(signum) -> bool:
    """For a signal handler: inside :func:`temp_file`/:func:`temp_dir`'s critical step, note the signal and
    return True (the handler returns; the signal is delivered again right after the path is recorded)."""
    if _CRITICAL[0]:
        _PENDING.append(signum)
        return True
    return False


class _Critical:
    """Making a temporary path and recording it happen together: a SIGTERM between the two (any thread
    of the process may take it, so masking the main thread is not enough) would leak the path."""

    def __enter__(self):
        _CRITICAL[0] += 1

    def __exit__(self, *exc):
        _CRITICAL[0] -= 1
        if not _CRITICAL[0] and _PENDING:
            import signal

            signum = _PENDING.pop()
            _PENDING.clear()
            signal.raise_signal(signum)  # now the handler raises, with the path recorded


def signals_deferred():
    """A block that SIGTERM does not cut: one that arrives meanwhile is acted on when the block ends (a
    swap of two renames, a temporary path and its record)."""
    return _Critical()


def untrack_temp(path) -> None:
    """A temporary path that became a final one (renamed into place): the exit hook must leave it."""
    _TEMPS.discard(str(path))


def temp_file(prefix: str = "", suffix: str = "", dir=None) -> tuple[int, str]:
    """``tempfile.mkstemp`` whose path is recorded for the exit cleanup before any SIGTERM is acted on."""
    with _Critical():
        fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=None if dir is None else str(dir))
        track_temp(path)
    return fd, path


def temp_dir(prefix: str = "", suffix: str = "", dir=None) -> str:
    """``tempfile.mkdtemp``, recorded for the exit cleanup before any SIGTERM is acted on."""
    with _Critical():
        path = track_temp(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=None if dir is None else str(dir)))
    return path


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
    try:
        fd, tmp = temp_file(prefix=f".{p.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise EdgecnnError(f"cannot write {p}: {exc.strerror or exc} (a read-only or full disk?); nothing was changed") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        check_stop()  # a stop asked for meanwhile (its exception perhaps lost in a library): nothing replaced
        os.replace(tmp, p)
        _TEMPS.discard(tmp)
    except OSError as exc:  # a full disk, an immutable file in the way: one line, the old file untouched
        remove_temp(tmp)
        kept = f"{p.name} was left as it was" if p.exists() else "nothing was written"
        raise EdgecnnError(f"cannot write {p}: {exc.strerror or exc}; {kept}") from None
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


def why_unwritable(folder: Path) -> str | None:
    """Why a file cannot be made in ``folder`` (a full or read-only disk), found by making one; None if it can."""
    import errno

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".edgecnn-probe.") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return {
            errno.ENOSPC: "the disk is full (free some space and run it again)",
            errno.EROFS: "the disk is read-only",
            errno.EACCES: "permission denied",
        }.get(exc.errno, exc.strerror or str(exc))
    return None
