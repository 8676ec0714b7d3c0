"""Import TensorFlow/Keras once, without the C++ start-up chatter on stderr.

TensorFlow prints oneDNN, CUDA-stub and absl lines on the process's stderr file descriptor while it
loads; a CLI user should not see them. ``EDGECNN_DEBUG=1`` keeps them.
"""

from __future__ import annotations

import os
import sys

from edgecnn.core._quiet import quiet_stderr

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tensorflow():
    """The ``tensorflow`` module, imported quietly; a clear error where it is not installed."""
    if "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None:
        return sys.modules["tensorflow"]
    try:
        with quiet_stderr():
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
    except ImportError as exc:
        from edgecnn.core.errors import InputError

        raise InputError(
            f"TensorFlow is needed for this step but cannot be imported ({exc}); install the workstation side with: pip install 'edgecnn[convert]'"
        ) from None
    return tf


def __getattr__(name: str):
    """``from edgecnn.models._tf import keras`` (or ``layers``): Keras, with TensorFlow loaded quietly first."""
    if name in ("keras", "layers"):
        tensorflow()
        import keras

        return keras if name == "keras" else keras.layers
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
