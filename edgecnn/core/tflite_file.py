"""Read (and, on the workstation, annotate) ``.tflite`` files without an interpreter.

The TFLite flatbuffer read through the schema bindings LiteRT ships (``schema_py_generated``, lazy
API: no copy of the weights): operator codes, tensors with their types, shapes and quantization,
operators, buffers and the model metadata. :func:`~edgecnn.core.tflite_validate.validate_graph` checks everything the
interpreter trusts without checking (indices, optional inputs, quantization parameters, constant buffer sizes,
shapes) *before* an interpreter sees the bytes, so a damaged file is a clear error, not a crash.
Device-safe: numpy and the LiteRT wheel.

The preprocessing spec and other edgecnn facts travel in a metadata entry named ``edgecnn``
holding UTF-8 JSON (:func:`read_metadata`, :func:`with_metadata`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from edgecnn.core.errors import InputError
from edgecnn.core.tflite_validate import (  # noqa: F401 - FormatError and the validator are part of this module's API
    MAX_ELEMENTS,
    OFFSET_UNSET,
    FormatError,
    _bytes_for,
    _count,
    _sparsity,
    _vec,
    validate_graph,
)

METADATA_NAME = "edgecnn"
TENSOR_TYPES = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    5: "string",
    6: "bool",
    7: "int16",
    8: "complex64",
    9: "int8",
    10: "float64",
    11: "complex128",
    12: "uint64",
    13: "resource",
    14: "variant",
    15: "uint32",
    16: "uint16",
    17: "int4",
    18: "bfloat16",
}


@lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    """Builtin operator code -> name, from the schema module the installed runtime ships."""
    ops = _schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class TensorInfo:
    index: int
    name: str
    dtype: str
    shape: list[int]
    shape_signature: list[int]
    buffer: int
    quantized: bool
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    is_constant: bool = False
    quantized_dimension: int = 0
    sparsity: dict | None = None  # TFLite sparsity (a DENSIFY input): traversal order, block map, dimensions


@dataclass
class OpInfo:
    index: int
    name: str  # builtin name (e.g. CONV_2D) or the custom code
    custom: bool
    version: int
    inputs: list[int]
    outputs: list[int]


@dataclass
class TFLiteFile:
    path: str | None
    size_bytes: int
    version: int
    description: str | None
    tensors: list[TensorInfo]
    operators: list[OpInfo]
    inputs: list[int]
    outputs: list[int]
    subgraphs: int
    metadata: dict[str, bytes]
    signature_outputs: dict[str, int] = field(default_factory=dict)  # the first signature's output names -> tensor index

    def op_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for op in self.operators:
            hist[op.name] = hist.get(op.name, 0) + 1
        return dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))

    def float_tensors(self) -> list[TensorInfo]:
        """Non-constant float tensors (activations) — what a full-integer model should not have."""
        return [t for t in self.tensors if t.dtype in ("float32", "float16") and not t.is_constant]

    def constant_bytes(self) -> int:
        """Bytes of the constant tensors (weights, biases): what an accelerator must hold or stream."""
        total = 0
        for t in self.tensors:
            if t.is_constant:
                n = 1
                for d in t.shape:
                    n *= max(1, d)
                total += _bytes_for(t.dtype, n) or 0
        return total

    def compute_class(self) -> str:
        """``int8`` when every activation between the edges is integer (full-integer model), else ``float``
        (fp32, fp16 and dynamic range, whose kernels compute in float)."""
        edges = set(self.inputs) | set(self.outputs)
        return "float" if any(t.index not in edges for t in self.float_tensors()) else "int8"

    def macs(self) -> int:
        """Multiply-accumulates of the convolution and fully connected ops (batch 1)."""
        total = 0
        for op in self.operators:
            if len(op.inputs) < 2 or not op.outputs:
                continue
            out = self.tensors[op.outputs[0]].shape
            w = self.tensors[op.inputs[1]].shape if op.inputs[1] >= 0 else []
            n_out = 1
            for d in out:
                n_out *= max(1, d)
            if op.name == "CONV_2D" and len(w) == 4:
                total += n_out * w[1] * w[2] * w[3]
            elif op.name == "DEPTHWISE_CONV_2D" and len(w) == 4:
                total += n_out * w[1] * w[2]
            elif op.name == "FULLY_CONNECTED" and len(w) == 2:
                total += n_out * w[1]
            elif op.name == "TRANSPOSE_CONV" and len(op.inputs) > 2:
                w = self.tensors[op.inputs[1]].shape
                x = self.tensors[op.inputs[2]].shape
                if len(w) == 4 and len(x) == 4:
                    total += x[1] * x[2] * x[3] * w[0] * w[1] * w[2]
            elif op.name == "BATCH_MATMUL" and len(w) >= 2:
                total += n_out * w[-2]
        return int(total)

    @property
    def edgecnn(self) -> dict | None:
        raw = self.metadata.get(METADATA_NAME)
        if raw is None:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None


def parse(data: bytes, path: str | None = None) -> TFLiteFile:
    """Read TFLite bytes through the schema bindings LiteRT ships, then :func:`validate` everything the
    interpreter will trust; raises :class:`FormatError` with a one-line reason naming the file."""
    where = path or "the model"
    if len(data) < 16:
        raise FormatError(f"{where} is too small ({len(data)} bytes) to be a TFLite model")
    if bytes(data[4:8]) != b"TFL3":
        raise FormatError(f"{where} is not a TFLite model (no 'TFL3' identifier); convert it with: edgecnn convert")
    S = _schema()
    n_max = len(data)
    try:
        m = S.Model.GetRootAs(data, 0)
        opcodes = _opcodes(m, S, n_max)
        buffers = []  # (data length, external offset, external size)
        for i in range(_count(m.BuffersLength(), n_max, "buffer")):
            bf = m.Buffers(i)
            buffers.append(
                (
                    _count(bf.DataLength(), n_max, "buffer data") if bf is not None else 0,
                    bf.Offset() if bf is not None else 0,
                    bf.Size() if bf is not None else 0,
                )
            )
        n_sub = _count(m.SubgraphsLength(), n_max, "subgraph")
        if not n_sub:
            raise FormatError("it has no subgraph")
        graphs = [_subgraph(m.Subgraphs(g), opcodes, buffers, n_max) for g in range(n_sub)]
        metadata = {}
        for i in range(_count(m.MetadataLength(), n_max, "metadata")):
            md = m.Metadata(i)
            bi = md.Buffer()
            if bi >= len(buffers):
                raise FormatError(f"metadata {i} names buffer {bi} of {len(buffers)}")
            bf = m.Buffers(bi)
            metadata[(md.Name() or b"").decode("utf-8", "replace")] = bf.DataAsNumpy().tobytes() if buffers[bi][0] else b""
        description = m.Description()
        info = TFLiteFile(
            path,
            len(data),
            m.Version(),
            description.decode("utf-8", "replace") if description else None,
            graphs[0][0],
            graphs[0][1],
            graphs[0][2],
            graphs[0][3],
            n_sub,
            metadata,
            _signature_outputs(m, n_max),
        )
        for g, (tensors, operators, ins, outs) in enumerate(graphs):
            validate_graph(g, tensors, operators, ins, outs, buffers, len(data))
    except FormatError as exc:
        raise FormatError(f"{where} is corrupt: {exc}") from None  # every model error names the file
    except struct.error:
        raise FormatError(f"{where} is truncated or damaged: an offset in it points past its end ({len(data)} bytes)") from None
    except (IndexError, ValueError, TypeError, AttributeError, OverflowError, UnicodeDecodeError) as exc:
        raise FormatError(f"{where} is not a well-formed TFLite model ({type(exc).__name__}: {str(exc)[:120]})") from None
    return info


def _opcodes(m, S, n_max: int) -> list[tuple[str, bool, int]]:
    """(name, custom?, version) per operator code: a builtin's name, or the custom code."""
    names = _builtin_names()
    opcodes = []
    for i in range(_count(m.OperatorCodesLength(), n_max, "operator code")):
        oc = m.OperatorCodes(i)
        code = max(oc.DeprecatedBuiltinCode(), oc.BuiltinCode())
        custom = oc.CustomCode()
        if code == S.BuiltinOperator.CUSTOM and custom:
            opcodes.append((custom.decode("utf-8", "replace"), True, oc.Version()))
        else:
            opcodes.append((names.get(code, f"BUILTIN_{code}"), False, oc.Version()))
    return opcodes


def _subgraph(sg, opcodes, buffers, n_max: int):
    """(tensors, operators, inputs, outputs) of one subgraph, read (validated later, as a whole)."""
    tensors = []
    for i in range(_count(sg.TensorsLength(), n_max, "tensor")):
        t = sg.Tensors(i)
        q = t.Quantization()
        scale = _vec(q, "Scale", n_max) if q is not None else []
        dtype_code, buf_index = t.Type(), t.Buffer()
        tensors.append(
            TensorInfo(
                index=i,
                name=(t.Name() or b"").decode("utf-8", "replace") or f"tensor_{i}",
                dtype=TENSOR_TYPES.get(dtype_code, f"type_{dtype_code}"),
                shape=_vec(t, "Shape", n_max),
                shape_signature=_vec(t, "ShapeSignature", n_max),
                buffer=buf_index,
                quantized=bool(scale),
                scale=scale,
                zero_point=_vec(q, "ZeroPoint", n_max) if q is not None else [],
                is_constant=0 < buf_index < len(buffers) and (buffers[buf_index][0] > 0 or buffers[buf_index][1] > OFFSET_UNSET),
                quantized_dimension=q.QuantizedDimension() if q is not None else 0,
                sparsity=_sparsity(t.Sparsity(), n_max, _schema()),
            )
        )
    operators = []
    for i in range(_count(sg.OperatorsLength(), n_max, "operator")):
        op = sg.Operators(i)
        idx = op.OpcodeIndex()
        if idx >= len(opcodes):
            raise FormatError(f"operator {i} uses opcode {idx} of {len(opcodes)}")
        name, custom, ver = opcodes[idx]
        operators.append(OpInfo(i, name, custom, ver, _vec(op, "Inputs", n_max), _vec(op, "Outputs", n_max)))
    return tensors, operators, _vec(sg, "Inputs", n_max), _vec(sg, "Outputs", n_max)


def _signature_outputs(m, n_max: int) -> dict[str, int]:
    """The output names of the first signature on subgraph 0 (what a SavedModel's or ONNX graph's outputs
    were called) -> tensor index; empty where the file has none."""
    for i in range(_count(m.SignatureDefsLength(), n_max, "signature")):
        sd = m.SignatureDefs(i)
        if sd.SubgraphIndex() != 0:
            continue
        out = {}
        for j in range(_count(sd.OutputsLength(), n_max, "signature output")):
            tm = sd.Outputs(j)
            out[(tm.Name() or b"").decode("utf-8", "replace")] = tm.TensorIndex()
        return out
    return {}


def read_bytes(path) -> bytes:
    """A model file's bytes; missing, folder or unreadable is :class:`InputError` naming it."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"model file not found: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a .tflite file")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror}") from None


def read(path) -> TFLiteFile:
    """Parse a ``.tflite`` file; missing or unreadable files are :class:`InputError`."""
    return parse(read_bytes(path), str(path))


def read_metadata(path) -> dict | None:
    """The ``edgecnn`` metadata of a model file (None for files edgecnn did not make)."""
    return read(path).edgecnn


@lru_cache(maxsize=1)
def _schema():
    """The TFLite schema bindings: LiteRT's on the device side, TensorFlow's only where LiteRT is absent."""
    for mod in ("ai_edge_litert.schema_py_generated", "tflite_runtime.schema_py_generated", "tensorflow.lite.python.schema_py_generated"):
        try:
            return __import__(mod, fromlist=["ModelT"])
        except ImportError:
            continue
    raise InputError("reading .tflite files needs the LiteRT runtime: pip install ai-edge-litert")


def with_metadata(model_bytes: bytes, meta: dict | None, name: str = METADATA_NAME, raw: bytes | None = None) -> bytes:
    """Return the model bytes with the metadata entry ``name`` set (replacing an older one): ``meta`` as
    JSON, or ``raw`` bytes as they are (the standard TFLITE_METADATA flatbuffer)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model_bytes, 0))
    payload = raw if raw is not None else json.dumps(meta, sort_keys=True, default=str).encode("utf-8")
    buf = schema.BufferT()
    import numpy as np

    buf.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if (m.name.decode() if isinstance(m.name, bytes) else m.name) != name]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
