"""The device-side bundle reader: the one place that turns a bundle folder into file paths.

A bundle (made on a workstation by ``edgecnn bundle``, see :mod:`edgecnn.workstation.bundler`) is a folder with a
``manifest.json`` naming its files and their roles: detectors, the embedder converted for the
target, the gallery. Every path it lists is confined to the folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from edgecnn.core.errors import InputError

MANIFEST = "manifest.json"


class Bundle:
    """A bundle folder and its manifest; ``file(name)`` and the role properties give checked paths."""

    def __init__(self, folder: Path, manifest: dict):
        self.folder = folder
        self.manifest = manifest
        self._verified: set = set()  # files whose sha256 was checked (the gallery changes: never checked)

    def get(self, key, default=None):
        return self.manifest.get(key, default)

    def __getitem__(self, key):
        return self.manifest[key]

    @property
    def target(self) -> str | None:
        return self.manifest.get("target")

    def file(self, name: str) -> Path:
        """``name`` inside the bundle; a path that leaves the folder or a missing file is an error."""
        root = self.folder.resolve()
        p = (root / str(name)).resolve()
        if root not in p.parents:
            raise InputError(f"bundle {self.folder} lists {name!r}, which is outside the bundle; make the bundle again")
        if not p.is_file():
            raise InputError(f"bundle {self.folder} lists {name} but the file is missing; make the bundle again")
        entry = self.manifest.get("files", {}).get(name) or {}
        if entry.get("sha256") and entry.get("role") != "gallery" and name not in self._verified:
            from edgecnn.device.loader import file_sha256

            if file_sha256(p) != entry["sha256"]:
                raise InputError(f"bundle {self.folder}: {name} does not match its sha256 in the manifest (changed or damaged); copy the bundle again")
            self._verified.add(name)
        return p

    def role(self, key: str) -> Path | None:
        """The file the manifest names for ``key`` (detector, detector_full, embedder, gallery), or None."""
        name = self.manifest.get(key)
        return self.file(name) if name else None


_OPEN: dict = {}  # (folder, manifest inode, size, mtime) -> Bundle: a bundle is read and verified once per process


def open_bundle(folder) -> Bundle:
    """The bundle at ``folder``, its manifest checked; the same :class:`Bundle` (and the files it has
    verified) for every caller in this process until the manifest changes (a replaced bundle is new)."""
    f = Path(folder)
    try:
        st = (f / MANIFEST).stat()
    except OSError:
        return _read_bundle(f)  # no manifest (or no folder: a killed replacement is recovered there); said there
    key = (str(f.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _OPEN:
        _OPEN[key] = _read_bundle(f)
    return _OPEN[key]


def _read_bundle(f: Path) -> Bundle:
    if not f.is_dir():
        try:
            recover(f)  # a replacement killed between its two renames: the old bundle goes back
        except OSError:
            pass  # a read-only medium: said below as a missing folder
    if not f.is_dir():
        raise InputError(f"bundle folder not found: {f}")
    m = f / MANIFEST
    if not m.is_file():
        raise InputError(f"{f} is not an edgecnn bundle (no {MANIFEST}); make one with: edgecnn bundle --target T --output DIR")
    try:
        data = json.loads(m.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{m} is not valid JSON; make the bundle again") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict) or "edgecnn_version" not in data or "target" not in data:
        raise InputError(f"{m} is not an edgecnn bundle manifest; make the bundle again")
    return Bundle(f, data)


def required_role(folder, key: str, what: str, how: str):
    """(path, target) of the file a bundle's manifest names for ``key``; a bundle without one is an
    error that says how to make one (``how``)."""
    b = open_bundle(folder)
    path = b.role(key)
    if path is None:
        raise InputError(f"bundle {folder} has no {what}; make one with: {how}")
    return path, b.target


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: alive
    return True


def recover(out: Path) -> list[str]:
    """Finish what killed runs left beside ``out``: a replacement cut between its two renames is undone
    (the old bundle goes back in place); staging folders and old bundles of runs that are no longer
    running are removed. Only names of our own pattern, ``.OUT.PID.*.partial`` and ``.OUT.PID.old``,
    are touched. Returns what was done, a line each."""
    done = []
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(\d+)\.(?:.+\.partial|old)")
    parent = out.parent if str(out.parent) else Path(".")
    for p in sorted(parent.iterdir()) if parent.is_dir() else []:
        m = pattern.fullmatch(p.name)
        if not m or not p.is_dir() or _alive(int(m.group(1))):
            continue
        if p.name.endswith(".old") and not out.exists():
            os.rename(p, out)
            done.append(f"restored the bundle that an interrupted --force had moved aside ({p.name})")
        else:
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p.name}, left by an interrupted run")
    return done


def gallery_path(gallery=None, bundle=None, create: bool = False):
    """The gallery a command uses: the one given, else the bundle's (the manifest's, or one enrolled on
    the device into the bundle folder; ``create`` makes it there), else the user's default (None).
    A bundle without a gallery is an error, never a silent switch to the user's own gallery."""
    if gallery:
        return gallery
    if bundle:
        b = open_bundle(bundle)
        path = b.role("gallery")
        if path is None:
            local = b.folder / "gallery.db"
            if not (create or local.is_file()):
                raise InputError(f"bundle {bundle} has no gallery; enrol on the device with: edgecnn enroll NAME IMG --bundle {bundle}")
            path = local
        return str(path)
    return None
