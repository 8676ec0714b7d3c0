"""Making a deployment bundle (workstation side): detectors, the embedder converted for the target,
the gallery and a manifest with each file's sha256, in one folder that a device reads with
:mod:`edgecnn.bundle` and nothing else."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from pathlib import Path

from edgecnn import __version__
from edgecnn.bundle import MANIFEST
from edgecnn.detectors import BLAZEFACE, find_model_file
from edgecnn.errors import InputError
from edgecnn.faces import Embedder
from edgecnn.facenet import ensure_facenet
from edgecnn.gallery import Gallery
from edgecnn.paths import default_gallery_path
from edgecnn.targets import load_target


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_bundle(target, output, gallery=None, embedder=None, with_embedder: bool = True, progress: bool = False) -> dict:
    """Gather detector(s), the embedder for ``target`` and the gallery into ``output`` with a manifest."""
    prof = load_target(target)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise InputError(f"--output {out} is a non-empty folder that is not a bundle; choose an empty or new folder")
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    files = {}
    manifest = {"edgecnn_version": __version__, "target": prof.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "files": files}
    try:
        for name in BLAZEFACE:
            src = find_model_file(name)
            shutil.copy2(src, staging / src.name)
            files[src.name] = {"sha256": _sha(staging / src.name), "role": f"detector ({name}, float: BlazeFace ships as a float model)"}
        manifest["detector"] = BLAZEFACE["blazeface"]["file"]
        manifest["detector_full"] = BLAZEFACE["blazeface-full"]["file"]
        if with_embedder:
            emb = Path(embedder) if embedder else ensure_facenet(prof.name, progress=progress)
            shutil.copy2(emb, staging / emb.name)
            files[emb.name] = {"sha256": _sha(staging / emb.name), "role": "face embedder"}
            manifest["embedder"] = emb.name
        g = Path(gallery) if gallery else default_gallery_path()
        if gallery and not g.is_file():
            raise InputError(f"gallery not found: {g}")
        if g.is_file() and with_embedder:
            gal = Gallery(g, create=False)
            emb_id = Embedder(staging / manifest["embedder"]).identity
            have = gal.meta("embedder")
            gal.close()
            if have and have != emb_id:
                raise InputError(
                    f"gallery {g} was enrolled with {have} but the {prof.name} embedder is {emb_id}: "
                    f"enrol again with --target {prof.name} (into a new --gallery) and bundle that"
                )
        if g.is_file():
            dst = staging / "gallery.db"
            src_db = sqlite3.connect(str(g))
            dst_db = sqlite3.connect(str(dst))
            src_db.backup(dst_db)  # a consistent copy even while the gallery is in use
            src_db.close()
            dst_db.close()
            dst.chmod(0o600)
            files["gallery.db"] = {"sha256": _sha(dst), "role": "gallery"}
            manifest["gallery"] = "gallery.db"
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    manifest["output"] = str(out)
    return manifest
