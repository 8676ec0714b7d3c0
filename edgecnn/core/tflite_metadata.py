"""The standard TFLite model metadata (``TFLITE_METADATA``, metadata_schema.fbs), read the way the
TFLite Task Library reads it: the input image's normalisation (NormalizationOptions mean/std), its
value range (Stats min/max), its colour space, and the label file packed into the model (a zip
appended to the ``.tflite``, named by an AssociatedFile of type TENSOR_AXIS_LABELS).

Device-safe: the ``flatbuffers`` runtime that LiteRT depends on, numpy, the standard library. Every
read is bounds-checked by the flatbuffers table API; a damaged entry is reported as absent, never a
crash.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

NAME = "TFLITE_METADATA"
IDENTIFIER = b"M001"

# metadata_schema.fbs: field slots of each table, enum values
_MODEL_SUBGRAPHS = 3
_SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS = 2, 3
_TENSOR_NAME, _TENSOR_CONTENT, _TENSOR_PROCESS_UNITS, _TENSOR_STATS, _TENSOR_FILES = 0, 3, 4, 5, 6
_CONTENT_PROPS_TYPE, _CONTENT_PROPS = 0, 1
_IMAGE_COLOR_SPACE = 0
_UNIT_OPTIONS_TYPE, _UNIT_OPTIONS = 0, 1
_NORM_MEAN, _NORM_STD = 0, 1
_STATS_MAX, _STATS_MIN = 0, 1
_FILE_NAME, _FILE_TYPE = 0, 2
PROPS_IMAGE = 2
UNIT_NORMALIZATION = 1
COLOR_SPACES = {0: None, 1: "rgb", 2: "gray"}
FILE_TENSOR_AXIS_LABELS = 2
FILE_TENSOR_VALUE_LABELS = 3


@dataclass
class TensorMeta:
    name: str | None = None
    mean: list | None = None  # NormalizationOptions
    std: list | None = None
    min: list | None = None  # Stats
    max: list | None = None
    color: str | None = None  # ImageProperties.color_space
    label_files: list = field(default_factory=list)  # AssociatedFile names of type TENSOR_AXIS_LABELS


@dataclass
class StandardMetadata:
    inputs: list = field(default_factory=list)  # TensorMeta per input
    outputs: list = field(default_factory=list)  # TensorMeta per output
    labels: list | None = None  # from the first output's packed label file

    @property
    def input(self) -> TensorMeta | None:
        return self.inputs[0] if self.inputs else None


class _T:
    """A bounds-checked view of one flatbuffer table."""

    def __init__(self, buf: bytes, pos: int):
        import flatbuffers.table

        self.t = flatbuffers.table.Table(bytearray(buf) if not isinstance(buf, bytearray) else buf, pos)

    def _off(self, slot: int) -> int:
        return self.t.Offset(4 + 2 * slot)

    def table(self, slot: int):
        o = self._off(slot)
        return _T(self.t.Bytes, self.t.Indirect(o + self.t.Pos)) if o else None

    def tables(self, slot: int) -> list:
        o = self._off(slot)
        if not o:
            return []
        start, n = self.t.Vector(o), self.t.VectorLen(o)
        return [_T(self.t.Bytes, self.t.Indirect(start + 4 * j)) for j in range(min(n, 4096))]

    def string(self, slot: int):
        o = self._off(slot)
        return self.t.String(o + self.t.Pos).decode("utf-8", "replace") if o else None

    def u8(self, slot: int, default: int = 0) -> int:
        import flatbuffers.number_types as N

        o = self._off(slot)
        return int(self.t.Get(N.Uint8Flags, o + self.t.Pos)) if o else default

    def floats(self, slot: int):
        import flatbuffers.number_types as N

        o = self._off(slot)
        if not o:
            return None
        start, n = self.t.Vector(o), self.t.VectorLen(o)
        return [float(self.t.Get(N.Float32Flags, start + 4 * j)) for j in range(min(n, 64))]


def _tensor(t: _T) -> TensorMeta:
    m = TensorMeta(name=t.string(_TENSOR_NAME))
    content = t.table(_TENSOR_CONTENT)
    if content is not None and content.u8(_CONTENT_PROPS_TYPE) == PROPS_IMAGE:
        props = content.table(_CONTENT_PROPS)
        if props is not None:
            m.color = COLOR_SPACES.get(props.u8(_IMAGE_COLOR_SPACE))
    for unit in t.tables(_TENSOR_PROCESS_UNITS):
        if unit.u8(_UNIT_OPTIONS_TYPE) == UNIT_NORMALIZATION and (opts := unit.table(_UNIT_OPTIONS)) is not None:
            m.mean, m.std = opts.floats(_NORM_MEAN), opts.floats(_NORM_STD)
    stats = t.table(_TENSOR_STATS)
    if stats is not None:
        m.max, m.min = stats.floats(_STATS_MAX), stats.floats(_STATS_MIN)
    for f in t.tables(_TENSOR_FILES):
        if f.u8(_FILE_TYPE) in (FILE_TENSOR_AXIS_LABELS, FILE_TENSOR_VALUE_LABELS) and f.string(_FILE_NAME):
            m.label_files.append(f.string(_FILE_NAME))
    return m


def packed_files(model) -> dict[str, bytes]:
    """The files packed into a model (a zip appended to the flatbuffer), by name; ``model`` is the
    file's bytes or its path (then only the zip's directory and members are read)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model) if isinstance(model, (bytes, bytearray)) else str(model)) as z:
            return {n: z.read(n) for n in z.namelist() if z.getinfo(n).file_size < 16 * 1024 * 1024}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return {}


def parse(raw: bytes, model=None) -> StandardMetadata | None:
    """The ``TFLITE_METADATA`` buffer -> :class:`StandardMetadata` (None where it is absent or damaged)."""
    if raw is None or len(raw) < 8 or bytes(raw[4:8]) != IDENTIFIER:
        return None
    try:
        import flatbuffers.encode
        import flatbuffers.packer

        root = _T(raw, flatbuffers.encode.Get(flatbuffers.packer.uoffset, bytearray(raw), 0))
        subgraphs = root.tables(_MODEL_SUBGRAPHS)
        if not subgraphs:
            return None
        sg = subgraphs[0]
        meta = StandardMetadata([_tensor(t) for t in sg.tables(_SUBGRAPH_INPUTS)], [_tensor(t) for t in sg.tables(_SUBGRAPH_OUTPUTS)])
    except Exception:  # noqa: BLE001 - a damaged metadata entry is no metadata, never a crash
        return None
    if model is not None and meta.outputs and meta.outputs[0].label_files:
        text = packed_files(model).get(meta.outputs[0].label_files[0])
        if text is not None:
            meta.labels = [ln.strip() for ln in text.decode("utf-8", "replace").splitlines() if ln.strip()]
    return meta
