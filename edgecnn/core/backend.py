"""Which TFLite interpreter this machine has: ``ai_edge_litert``, else ``tflite_runtime``, else
``tensorflow.lite`` — the device-side order. ``EDGECNN_RUNTIME`` forces one of the three."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import lru_cache

from edgecnn.core.errors import InputError

ORDER = ("ai_edge_litert", "tflite_runtime", "tensorflow")
_MODULES = {
    "ai_edge_litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
}


@dataclass(frozen=True)
class Backend:
    name: str
    version: str
    Interpreter: type
    load_delegate: object


def _load(name: str) -> Backend:
    if name == "tensorflow":
        # the last resort of the device order (a workstation without LiteRT): imported only here, lazily
        from edgecnn.core._quiet import quiet_stderr

        with quiet_stderr():
            tf = importlib.import_module("tensorflow")
        return Backend("tensorflow", tf.__version__, tf.lite.Interpreter, tf.lite.experimental.load_delegate)
    mod = importlib.import_module(_MODULES[name])
    pkg = importlib.import_module(name)
    version = getattr(pkg, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version(name.replace("_", "-"))
        except Exception:  # noqa: BLE001
            version = "unknown"
    return Backend(name, version, mod.Interpreter, mod.load_delegate)


@lru_cache(maxsize=None)
def get_backend(preferred: str | None = None) -> Backend:
    """The first importable interpreter in :data:`ORDER` (or the one ``EDGECNN_RUNTIME`` names)."""
    forced = preferred or os.environ.get("EDGECNN_RUNTIME")
    candidates = [forced] if forced else list(ORDER)
    if forced and forced not in ORDER:
        raise InputError(f"EDGECNN_RUNTIME must be one of {', '.join(ORDER)}, got {forced!r}")
    errors = []
    for name in candidates:
        try:
            return _load(name)
        except Exception as exc:  # noqa: BLE001 - ImportError, or a broken wheel (numpy ABI)
            errors.append(f"{name}: {type(exc).__name__}")
    raise InputError(
        "no TFLite interpreter could be imported (" + "; ".join(errors) + "); install one: pip install ai-edge-litert (or tflite-runtime on old devices)"
    )
