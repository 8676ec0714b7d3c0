"""Import TensorFlow/Keras once, without the C++ start-up chatter on stderr.

TensorFlow prints oneDNN, CUDA-stub and absl lines on the process's stderr file descriptor while it
loads; a CLI user should not see them. ``EDGECNN_DEBUG=1`` keeps them.
"""

from __future__ import annotations

import contextlib
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 to /dev/null inside the block (C++ logging included)."""
    if os.environ.get("EDGECNN_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tensorflow():
    """The ``tensorflow`` module, imported quietly; a clear error where it is not installed."""
    if "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None:
        return sys.modules["tensorflow"]
    try:
        with quiet_stderr():
            import tensorflow as tf
            import keras  # noqa: F401

            tf.config.list_physical_devices("GPU")
    except ImportError as exc:
        from edgecnn.errors import InputError

        raise InputError(
            f"TensorFlow is needed for this step but cannot be imported ({exc}); "
            "install the workstation side with: pip install 'edgecnn[convert]'"
        ) from None
    return tf
