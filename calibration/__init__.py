"""Representative data and the one preprocessing spec (device-safe: numpy and OpenCV)."""

from edgecnn.calibration.preprocess import PRESETS, PreprocessSpec

__all__ = ["PreprocessSpec", "PRESETS"]
