"""edgecnn: CNN builders, TFLite conversion, device targets and on-device runtime.

Importing :mod:`edgecnn` is cheap and never imports TensorFlow; the TensorFlow side lives in
:mod:`edgecnn.models` and :mod:`edgecnn.converters`.
"""

__version__ = "0.1.0"

from edgecnn.errors import EdgecnnError, InputError  # noqa: E402,F401


def __getattr__(name):
    """``from edgecnn import Model``: the device runtime, imported on first use (numpy, OpenCV and
    LiteRT only), so that ``import edgecnn`` stays cheap."""
    if name in ("Model", "load"):
        from edgecnn import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")
