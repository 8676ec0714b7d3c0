"""Where edgecnn keeps the user's data: the gallery and the models it converted once (FaceNet).

``$EDGECNN_HOME`` wins, else ``$XDG_DATA_HOME/edgecnn``, else ``~/.local/share/edgecnn``. Nothing
else in edgecnn decides a data or cache folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The user's edgecnn data folder (``$EDGECNN_HOME``, else ``$XDG_DATA_HOME/edgecnn``)."""
    if os.environ.get("EDGECNN_HOME"):
        return Path(os.environ["EDGECNN_HOME"])
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "edgecnn"


def default_gallery_path() -> Path:
    return data_dir() / "gallery.db"


def models_dir() -> Path:
    """Models converted once and cached (e.g. ``facenet_fp16.tflite``)."""
    return data_dir() / "models"
