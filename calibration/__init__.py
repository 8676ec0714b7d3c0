"""Representative data: image folders, video frames and real images carried by packages (device-safe:
numpy and OpenCV). The preprocessing spec they are read through lives in :mod:`edgecnn.core.preprocess`."""

from edgecnn.core.preprocess import PRESETS, PreprocessSpec

__all__ = ["PreprocessSpec", "PRESETS"]
