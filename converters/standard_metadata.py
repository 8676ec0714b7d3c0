"""Write the standard TFLite metadata (``TFLITE_METADATA``, metadata_schema.fbs) that the TFLite Task
Library, MediaPipe Tasks and Android Studio read: the input image's colour space and normalisation
(NormalizationOptions mean/std on raw pixel values, Stats of the value range), and the classifier's
label file packed into the model (a zip appended to the flatbuffer, named by an AssociatedFile of
type TENSOR_AXIS_LABELS). edgecnn's own metadata (``edgecnn``) stays beside it: it says more (resize,
anchors, the outputs' source order), the standard entry says what other runtimes understand.

The slots and enum values are the ones ``edgecnn.core.tflite_metadata`` reads them by.
"""

from __future__ import annotations

import io
import zipfile

from edgecnn.core import tflite_metadata as tm
from edgecnn.core.preprocess import PreprocessSpec

PARSER_VERSION = "1.0.0"  # the oldest metadata parser that reads every field written here
LABEL_FILE = "labels.txt"
_NAME, _DESCRIPTION, _SUBGRAPHS, _MIN_PARSER = 0, 1, 3, 7  # ModelMetadata slots
_COLOR = {"rgb": 1, "gray": 2}  # ImageProperties.color_space; BGR has no value in the schema


def _floats(b, values) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _tables(b, offsets) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _table(b, slots: int, fields: list) -> int:
    """A table from (slot, kind, value): kind "u8" or "off"."""
    b.StartObject(slots)
    for slot, kind, value in fields:
        if kind == "u8":
            b.PrependUint8Slot(slot, value, 0)
        else:
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
    return b.EndObject()


def task_normalization(spec: PreprocessSpec) -> tuple[list, list] | None:
    """The spec's ``(p * scale - mean) / std`` as the Task Library's ``(p - mean') / std'`` on raw pixel
    values, per channel; None where the spec is no such affine map (per-image whitening)."""
    if spec.normalize == "pixels":
        return [0.0], [1.0]
    if spec.normalize != "scale" or not spec.scale:
        return None
    return [m / spec.scale for m in spec.mean], [s / spec.scale for s in spec.std]


def build(spec: PreprocessSpec, labels: list | None, name: str, description: str = "") -> bytes:
    """The TFLITE_METADATA flatbuffer for a one-image-input model with edgecnn's preprocessing spec."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    units = []
    norm = task_normalization(spec)
    if norm is not None:
        options = _table(b, 2, [(tm._NORM_STD, "off", _floats(b, norm[1])), (tm._NORM_MEAN, "off", _floats(b, norm[0]))])
        units.append(_table(b, 2, [(tm._UNIT_OPTIONS_TYPE, "u8", tm.UNIT_NORMALIZATION), (tm._UNIT_OPTIONS, "off", options)]))
        lo = [(0.0 - m) / s for m, s in zip(*norm)]
        hi = [(255.0 - m) / s for m, s in zip(*norm)]
        stats = _table(b, 2, [(tm._STATS_MAX, "off", _floats(b, hi)), (tm._STATS_MIN, "off", _floats(b, lo))])
    else:
        stats = None
    image = _table(b, 2, [(tm._IMAGE_COLOR_SPACE, "u8", _COLOR.get(spec.color, 0))])
    content = _table(b, 3, [(tm._CONTENT_PROPS_TYPE, "u8", tm.PROPS_IMAGE), (tm._CONTENT_PROPS, "off", image)])
    fields = [(tm._TENSOR_NAME, "off", b.CreateString("image")), (tm._TENSOR_CONTENT, "off", content)]
    if units:
        fields.append((tm._TENSOR_PROCESS_UNITS, "off", _tables(b, units)))
    if stats is not None:
        fields.append((tm._TENSOR_STATS, "off", stats))
    tensor_in = _table(b, 7, fields)
    out_fields = [(tm._TENSOR_NAME, "off", b.CreateString("scores" if labels else "output"))]
    if labels:
        label_file = _table(b, 5, [(tm._FILE_NAME, "off", b.CreateString(LABEL_FILE)), (tm._FILE_TYPE, "u8", tm.FILE_TENSOR_AXIS_LABELS)])
        out_fields.append((tm._TENSOR_FILES, "off", _tables(b, [label_file])))
    tensor_out = _table(b, 7, out_fields)
    subgraph = _table(b, 4, [(tm._SUBGRAPH_INPUTS, "off", _tables(b, [tensor_in])), (tm._SUBGRAPH_OUTPUTS, "off", _tables(b, [tensor_out]))])
    root = _table(
        b,
        8,
        [
            (_NAME, "off", b.CreateString(name)),
            (_DESCRIPTION, "off", b.CreateString(description or name)),
            (_SUBGRAPHS, "off", _tables(b, [subgraph])),
            (_MIN_PARSER, "off", b.CreateString(PARSER_VERSION)),
        ],
    )
    b.Finish(root, file_identifier=tm.IDENTIFIER)
    return bytes(b.Output())


def with_standard_metadata(model_bytes: bytes, spec: PreprocessSpec, labels: list | None, name: str) -> bytes:
    """The model with ``TFLITE_METADATA`` set and, for a classifier with labels, its label file packed as
    the zip the Task Library reads. The last step before the file is written: re-packing the flatbuffer
    afterwards would drop the zip."""
    from edgecnn.core import tflite_file

    data = tflite_file.with_metadata(model_bytes, None, name=tm.NAME, raw=build(spec, labels, name))
    if not labels:
        return data
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_STORED) as z:
        z.writestr(LABEL_FILE, "\n".join(str(label) for label in labels) + "\n")
    return data + zipped.getvalue()


def for_conversion(data: bytes, spec: PreprocessSpec, meta: dict, name: str) -> bytes:
    """The converted file with the standard TFLITE_METADATA other runtimes read (MediaPipe Tasks, the Task
    Library), for a one-image model whose preprocessing they can say: a classifier's labels packed with it."""
    from edgecnn.core import tflite_file

    info = tflite_file.parse(data)
    if len(info.inputs) != 1 or len(info.tensors[info.inputs[0]].shape) != 4 or spec.normalize == "whiten":
        return data
    out_shape = info.tensors[info.outputs[0]].shape
    labels = meta.get("labels") if meta.get("task") == "classification" and len(info.outputs) == 1 else None
    if labels and (len(out_shape) != 2 or out_shape[-1] != len(labels)):
        labels = None
    return with_standard_metadata(data, spec, labels, name)
