"""Keras 3 builders for the classic and mobile CNNs, behind one registry.

    >>> from edgecnn import models
    >>> m = models.build("mobilenet_v2", alpha=0.35, input_size=96, num_classes=10)
    >>> models.stats(m)["params"]

This is the TensorFlow side of edgecnn: importing it imports Keras.
"""

from edgecnn.models._tf import tensorflow as _tensorflow

_tensorflow()

from edgecnn.models.registry import build, get_spec, list_models, register_model, resolve_kwargs  # noqa: E402
from edgecnn.models.stats import layer_table, peak_activation_bytes, stats  # noqa: E402

# Importing the architecture modules registers their builders.
from edgecnn.models import classic, efficientnet, googlenet, mobilenet, resnet, siamese, yolo  # noqa: E402,F401
from edgecnn.models.efficientnet import efficientnet as efficientnet_phi  # noqa: E402,F401

__all__ = ["build", "get_spec", "list_models", "register_model", "resolve_kwargs", "stats", "layer_table", "peak_activation_bytes"]
