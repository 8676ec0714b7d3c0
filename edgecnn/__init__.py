"""edgecnn: CNN builders, TFLite conversion, device targets and on-device runtime.

Importing :mod:`edgecnn` is cheap and never imports TensorFlow; the TensorFlow side lives in
:mod:`edgecnn.models` and :mod:`edgecnn.converters`.
"""

__version__ = "0.1.0"

from edgecnn.errors import EdgecnnError, InputError  # noqa: E402,F401
