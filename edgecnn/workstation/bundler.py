"""Making a deployment bundle (workstation side): detectors, the embedder converted for the target,
the gallery and a manifest with each file's sha256, in one folder that a device reads with
:mod:`edgecnn.device.bundle` and nothing else."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import time
from pathlib import Path

from edgecnn import __version__
from edgecnn.core._progress import stage_printer
from edgecnn.core.errors import InputError
from edgecnn.core.files import remove_temp, signals_deferred, temp_dir, untrack_temp
from edgecnn.core.paths import default_gallery_path
from edgecnn.device.bundle import MANIFEST, open_bundle, recover
from edgecnn.device.detectors import BLAZEFACE, find_model_file
from edgecnn.device.faces import Embedder
from edgecnn.device.gallery import Gallery, check_name
from edgecnn.device.loader import sha256_of
from edgecnn.targets import load_target
from edgecnn.workstation.facenet import ensure_facenet

JOURNALS = ("-wal", "-shm", "-journal")  # what SQLite keeps beside a database


def _sha(path: Path) -> str:
    return sha256_of(path.read_bytes())


def _prepare_output(out: Path, force: bool):
    """The folder a bundle goes to: new, empty, or (with ``force``) an earlier bundle, replaced whole.
    Returns the earlier bundle's own file names (its manifest's, its gallery's journals) or an empty
    list. What a killed earlier run left beside it is recovered first (:func:`recover`)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} exists and is not a folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"the folder for --output does not exist: {parent}")
    if not os.access(parent, os.W_OK) or (out.is_dir() and not os.access(out, os.W_OK)):
        raise InputError(f"cannot write a bundle to {out} (permission denied); choose another --output")
    recover(out)
    if not out.is_dir() or not any(out.iterdir()):
        return []
    if not force:
        raise InputError(f"--output {out} is not empty; choose a new folder, or pass --force to replace the bundle there (only the files its manifest lists)")
    try:
        previous = open_bundle(out)
    except InputError:
        raise InputError(
            f"--output {out} is not empty and holds no edgecnn bundle; --force only replaces a bundle's own files: choose another folder"
        ) from None
    names = [n for n in previous.manifest.get("files", {}) if (out / n).resolve().parent == out.resolve()]
    journals = [n + j for n in names if previous.manifest["files"][n].get("role") == "gallery" for j in JOURNALS]
    return names + journals + [MANIFEST]


def _swap_in(staging: Path, out: Path, replace: list) -> None:
    """Put the complete, verified bundle in ``staging`` at ``out`` by renames: at every moment ``out`` is
    the old bundle or the new one, whole (a kill between the two renames is undone by :func:`recover`).
    Files in an old bundle folder that its manifest does not list (the user's) come along, linked."""
    mode = stat.S_IMODE(out.stat().st_mode) if out.is_dir() else 0o755
    staging.chmod(mode)
    if not replace:  # a new or empty folder: one rename
        with signals_deferred():
            os.replace(staging, out)
            untrack_temp(staging)
        return
    backed_up: set = set()
    for entry in sorted(out.iterdir(), key=lambda e: e.name.endswith(JOURNALS)):  # a database before its journals
        if entry.name in replace or entry.name.rsplit("-", 1)[0] in backed_up:
            continue  # a database copied through SQLite's backup holds what its -wal held: the stale log stays behind
        if (staging / entry.name).exists():
            raise InputError(
                f"{out / entry.name} is not part of the old bundle, but the new bundle has a file of that name: "
                "move it away and run again (nothing was changed)"
            )
        if _carry(entry, staging / entry.name) == "backup":
            backed_up.add(entry.name)
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    with signals_deferred():
        os.rename(out, old)
        try:
            os.rename(staging, out)
        except BaseException:
            os.rename(old, out)
            raise
        untrack_temp(staging)
    shutil.rmtree(old, ignore_errors=True)


def _carry(src: Path, dst: Path) -> str:
    """The user's file or folder into the new bundle: hard links where the file system has them (no
    copy, no space; a live SQLite file and its logs stay one inode each), else a copy, and for a SQLite
    database SQLite's own backup (a file copy of a database in use can be torn). Returns how."""
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
        return "tree"
    return _link_or_copy(src, dst)


def _link_or_copy(src, dst) -> str:
    try:
        os.link(src, dst, follow_symlinks=False)
        return "link"
    except OSError:
        pass
    if not Path(src).is_symlink() and _is_sqlite(src):
        sqlite_copy(Path(src), Path(dst))
        return "backup"
    shutil.copy2(src, dst, follow_symlinks=False)
    return "copy"


def _is_sqlite(path) -> bool:
    with open(path, "rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def sqlite_copy(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database, even while another process writes to it."""
    from urllib.parse import quote

    src_db = sqlite3.connect(f"file:{quote(str(src.resolve()))}?mode=ro", uri=True)  # '#' or '?' in a path is not a URI part
    dst_db = sqlite3.connect(str(dst))
    try:
        src_db.backup(dst_db)
    finally:
        src_db.close()
        dst_db.close()


def parse_enrolments(specs) -> dict:
    """``NAME=IMG[,IMG…]`` (``bundle --enroll``) as {name: [image paths]}, every image checked to exist."""
    people: dict = {}
    for spec in specs or ():
        name, sep, images = str(spec).partition("=")
        paths = [p for p in images.split(",") if p]
        if not sep or not name.strip() or not paths:
            raise InputError(f"--enroll {spec!r}: expected NAME=IMG[,IMG…]")
        name = check_name(name)
        for p in paths:
            if not Path(p).is_file():
                raise InputError(f"--enroll {name}: image not found: {p}")
        people.setdefault(name, []).extend(paths)
    return people


def make_bundle(
    target,
    output,
    gallery=None,
    embedder=None,
    with_embedder: bool = True,
    progress: bool = False,
    force: bool = False,
    enroll=None,
    with_gallery: bool = True,
    style_model=None,
) -> dict:
    """Gather detector(s), the embedder for ``target`` and the gallery into ``output`` with a manifest.

    ``style_model``: a converted style network (:mod:`edgecnn.workstation.stylebuild`) to carry too.
    ``enroll`` ({name: [images]}) enrols those people with the bundle's own embedder into the bundle's
    gallery (after the copied ``gallery``, if any); ``with_gallery=False`` leaves the user's gallery out.

    Nothing is deleted that this run did not create, except (with ``force``) the files an earlier
    bundle's manifest lists in that same folder. The bundle is assembled and verified in a unique
    temporary folder beside ``output``, which then takes the folder's place by renames
    (:func:`_swap_in`): an interruption at any moment leaves the old bundle or the new one, whole."""
    prof = load_target(target)
    out = Path(output)
    replace = _prepare_output(out, force)
    _check_bundle_options(gallery, embedder, with_embedder, enroll, with_gallery)
    staging = Path(temp_dir(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial", dir=out.parent if str(out.parent) else "."))
    files = {}
    manifest = {"edgecnn_version": __version__, "target": prof.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "files": files}
    stage = stage_printer("bundle", progress)

    try:
        stage(f"assembling in {staging}")
        for name in BLAZEFACE:
            _carry_file(find_model_file(name), staging, files, f"detector ({name}, float: BlazeFace ships as a float model)")
        manifest["detector"] = BLAZEFACE["blazeface"]["file"]
        manifest["detector_full"] = BLAZEFACE["blazeface-full"]["file"]
        if with_embedder:
            if not embedder:
                stage(f"FaceNet for {prof.name} (converted once, then cached)")
            emb = Path(embedder) if embedder else ensure_facenet(prof.name, progress=progress)
            manifest["embedder"] = _carry_file(emb, staging, files, "face embedder")
            if prof.compile == "edgetpu_compiler":
                _compile_for_edgetpu(staging, manifest, stage)
        if style_model:
            manifest["stylizer"] = _carry_file(Path(style_model), staging, files, "style network (26 styles)")
        _gather_gallery(staging, manifest, gallery, with_gallery, with_embedder, enroll, prof.name, stage)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        (staging / MANIFEST).chmod(0o644)
        for extra in set(p.name for p in staging.iterdir()) - set(files) - {MANIFEST}:
            remove_temp(staging / extra)  # a compiler's log: the bundle is what its manifest lists
        staged = open_bundle(staging)
        for name in files:
            staged.file(name)  # complete and every sha256 right, before the old bundle goes
        _swap_in(staging, out, replace)
        stage(f"wrote {out} ({len(files)} files and {MANIFEST})")
    except OSError as exc:
        raise InputError(f"cannot write the bundle to {out}: {exc.strerror or exc}") from None
    finally:
        remove_temp(staging)
    manifest["output"] = str(out)
    return manifest


def _gather_gallery(staging: Path, manifest: dict, gallery, with_gallery: bool, with_embedder: bool, enroll, target: str, stage) -> None:
    """The user's gallery copied through SQLite's backup (checked first: a damaged one is one line naming
    the way out), then ``enroll``'s people enrolled into it; listed in the manifest if there is one."""
    g = Path(gallery) if gallery else default_gallery_path()
    if not with_gallery or (enroll and not gallery):  # --enroll alone: a gallery of just those people
        g = Path("/nonexistent/edgecnn-no-gallery")
    if g.is_file():
        _check_gallery_embedder(g, staging / manifest["embedder"] if with_embedder else None, target)
        sqlite_copy(g, staging / "gallery.db")
    if enroll:
        manifest["enrolled"] = _enroll_into(staging, manifest, enroll, target, stage)
    dst = staging / "gallery.db"
    if dst.is_file():
        dst.chmod(0o600)
        manifest["files"]["gallery.db"] = {"sha256": _sha(dst), "role": "gallery"}
        manifest["gallery"] = "gallery.db"


def _check_bundle_options(gallery, embedder, with_embedder: bool, enroll, with_gallery: bool) -> None:
    if embedder and not Path(embedder).is_file():
        raise InputError(f"--embedder not found: {embedder}")
    if gallery and not Path(gallery).is_file():
        raise InputError(f"gallery not found: {gallery}")
    if enroll and not with_embedder:
        raise InputError("--enroll needs the bundle's embedder; drop --no-embedder")
    if gallery and not with_gallery:
        raise InputError("--gallery and --no-gallery contradict each other; pass one")
    if enroll and not with_gallery:
        raise InputError("--enroll puts people into the bundle's gallery and --no-gallery leaves it out; pass one")


def _carry_file(src: Path, staging: Path, files: dict, role: str) -> str:
    """Copy ``src`` into the staging folder and list it with its sha256; returns its name there."""
    _copy(src, staging / src.name)
    files[src.name] = {"sha256": _sha(staging / src.name), "role": role}
    return src.name


def _check_gallery_embedder(g: Path, embedder_path: Path | None, target: str) -> None:
    """A gallery holds embeddings, not photos: one enrolled with another embedder cannot be carried.
    Opening it checks it too (SQLite's quick check), with or without an embedder to compare."""
    with Gallery(g, create=False, readonly=True) as gal:
        have = gal.meta("embedder")
    if embedder_path is None:
        return
    emb_id = Embedder(embedder_path).identity
    if have and have != emb_id:
        raise InputError(
            f"gallery {g} was enrolled with {have} but the {target} embedder is {emb_id}, and a gallery holds "
            f"embeddings, not photos: enrol into the bundle with --enroll NAME=IMG[,IMG…], or pass --no-gallery "
            f"and enrol on the device (edgecnn enroll NAME IMG… --bundle DIR)"
        )


def _compile_for_edgetpu(staging: Path, manifest: dict, stage) -> None:
    """Compile the staged embedder with edgetpu_compiler where it is installed; otherwise say plainly, in
    the manifest and on the console, that the Coral will run it on its host CPU."""
    from edgecnn.core import tflite_file
    from edgecnn.targets.edgetpu import compile_for_edgetpu

    emb = staging / manifest["embedder"]
    if "edgetpu-custom-op" in tflite_file.read(emb).op_histogram():  # --embedder gave a compiled one
        manifest["edgetpu_compiled"] = True
        return
    stage("edgetpu_compiler on the embedder")
    result = compile_for_edgetpu(emb)
    compiled = emb.with_name(emb.stem + "_edgetpu.tflite")
    if result.get("compiled") and compiled.is_file():
        compiled.chmod(0o644)
        manifest["files"][compiled.name] = {"sha256": _sha(compiled), "role": "face embedder (compiled for the Edge TPU)"}
        manifest["embedder"] = compiled.name
        manifest["edgetpu_compiled"] = True
        return
    manifest["edgetpu_compiled"] = False
    manifest.setdefault("warnings", []).append(
        f"NOT compiled for the Edge TPU: {manifest['embedder']} is the int8 model, which a Coral runs on its host CPU. "
        + result.get("message", "edgetpu_compiler failed")
        + "; then bundle again with --embedder THAT_edgetpu.tflite"
    )


def _enroll_into(staging: Path, manifest: dict, people: dict, target: str, stage) -> dict:
    """Enrol ``people`` with the staged bundle's own detector and embedder into its gallery."""
    from edgecnn.device.detectors import FaceDetector
    from edgecnn.device.faces import FaceVerifier, read_image

    emb = Embedder(staging / manifest["embedder"], target=target)
    verifier = FaceVerifier(emb, detector=FaceDetector(str(staging / manifest["detector"])), strict=True)
    gal = Gallery(staging / "gallery.db")
    counts = {}
    try:
        for name, paths in people.items():
            stage(f"enrolling {name} ({len(paths)} photo(s)) with {emb.identity}")
            vectors = [verifier.embed(read_image(p), str(p)).vector for p in paths]
            counts[name] = gal.enroll(name, vectors, emb.identity, sources=[str(p) for p in paths])
    finally:
        gal.close()
    return counts


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    dst.chmod(0o644)
