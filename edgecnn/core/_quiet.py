"""Keep native libraries' start-up chatter (TensorFlow, LiteRT's "Created XNNPACK delegate") off the
user's terminal. ``EDGECNN_DEBUG=1`` lets it through."""

from __future__ import annotations

import contextlib
import os
import sys


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
