"""edgecnn: CNN builders, TFLite conversion, device targets and on-device runtime.

The package is laid out in rooms (docs/architecture.md): ``core/`` (what everyone shares),
``device/`` (what runs on the board: numpy, OpenCV and LiteRT only), ``workstation/`` and ``cli/``
(jobs and commands that use everything), beside ``models/``, ``converters/``, ``targets/`` and
``calibration/``. Importing :mod:`edgecnn` is cheap and never imports TensorFlow; the TensorFlow side
lives in :mod:`edgecnn.models` and :mod:`edgecnn.converters`.

The public API: ``from edgecnn import Model`` (and ``load``), and the device modules by their short
names, ``edgecnn.runtime``, ``edgecnn.camera``, ``edgecnn.detectors``, ``edgecnn.faces``,
``edgecnn.gallery``, ``edgecnn.profiling`` and ``edgecnn.bundle`` (each the very module in its room).
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

from edgecnn.core.errors import EdgecnnError, InputError  # noqa: E402,F401

PUBLIC = {name: f"edgecnn.device.{name}" for name in ("runtime", "camera", "detectors", "faces", "gallery", "profiling", "bundle")}


class _PublicNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import edgecnn.runtime`` gives the module ``edgecnn.device.runtime`` itself: one module object
    under two names, never a second copy of its classes."""

    def __init__(self):
        self._specs = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith("edgecnn.") and fullname[8:] in PUBLIC:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(PUBLIC[spec.name[8:]])
        self._specs[spec.name] = module.__spec__  # the import system stamps the alias's spec on it: its own goes back
        return module

    def exec_module(self, module):
        module.__spec__ = self._specs.pop(module.__spec__.name, module.__spec__)


if not any(isinstance(f, _PublicNames) for f in sys.meta_path):
    sys.meta_path.append(_PublicNames())


def __getattr__(name):
    """``from edgecnn import Model``: the device runtime, imported on first use (numpy, OpenCV and
    LiteRT only), so that ``import edgecnn`` stays cheap; ``edgecnn.runtime`` and the other public names."""
    if name in ("Model", "load"):
        from edgecnn.device import runtime

        return getattr(runtime, name)
    if name in PUBLIC:
        return importlib.import_module(PUBLIC[name])
    raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")
