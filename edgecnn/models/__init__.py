"""Keras 3 builders for the classic and mobile CNNs, behind one registry.

    >>> from edgecnn import models
    >>> m = models.build("mobilenet_v2", alpha=0.35, input_size=96, num_classes=10)
    >>> models.stats(m)["params"]

This is the TensorFlow side of edgecnn. Importing the package is cheap: TensorFlow and Keras are
imported (quietly) the first time one of the functions below is used.
"""

from __future__ import annotations

import importlib

_API = {
    "build": "edgecnn.models.registry",
    "get_spec": "edgecnn.models.registry",
    "list_models": "edgecnn.models.registry",
    "register_model": "edgecnn.models.registry",
    "resolve_kwargs": "edgecnn.models.registry",
    "stats": "edgecnn.models.measure",
    "layer_table": "edgecnn.models.measure",
    "peak_activation_bytes": "edgecnn.models.measure",
}
# Importing the architecture modules registers their builders.
_FAMILIES = ("classic", "efficientnet", "googlenet", "mobilenet", "resnet", "siamese", "yolo")

__all__ = sorted(_API)


_loaded = False


def _load_registry() -> None:
    global _loaded
    if _loaded:
        return
    from edgecnn.models._tf import tensorflow

    tensorflow()  # quietly, with a clear error where it is not installed
    for family in _FAMILIES:
        importlib.import_module(f"edgecnn.models.{family}")
    # The submodules ``registry`` and ``stats`` are now imported; the public names are the functions.
    for name, module in _API.items():
        globals()[name] = getattr(importlib.import_module(module), name)
    _loaded = True


def __getattr__(name: str):
    if name in _API:
        _load_registry()
        return globals()[name]
    if name == "efficientnet_phi":
        _load_registry()
        from edgecnn.models.efficientnet import efficientnet

        return efficientnet
    raise AttributeError(f"module 'edgecnn.models' has no attribute {name!r}")
