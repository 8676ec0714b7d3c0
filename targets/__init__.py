"""Device targets: profiles (TOML), delegate loading with CPU fallback, op coverage, Edge TPU.

Device-safe: numpy and LiteRT only, no TensorFlow.
"""

from edgecnn.targets.profile import IO_TYPES, PRECISIONS, TargetProfile, list_targets, load_target

__all__ = ["TargetProfile", "list_targets", "load_target", "PRECISIONS", "IO_TYPES"]
