"""Read (and, on the workstation, annotate) ``.tflite`` files without an interpreter.

A bounds-checked reader of the TFLite flatbuffer (schema.fbs): operator codes, tensors with their
types, shapes and quantization, operators, buffers and the model metadata. The runtime validates a
file with it *before* an interpreter sees the bytes, so a truncated or foreign file is a clear
error, not a crash. Device-safe: standard library and numpy only.

The preprocessing spec and other edgecnn facts travel in a metadata entry named ``edgecnn``
holding UTF-8 JSON (:func:`read_metadata`, :func:`with_metadata`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from edgecnn.errors import InputError

METADATA_NAME = "edgecnn"
TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16",
    8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64", 13: "resource", 14: "variant",
    15: "uint32", 16: "uint16", 17: "int4",
}


# Field indices of the tables in TFLite's schema.fbs (the order of the fields in each table).
class Model_:
    VERSION, OPERATOR_CODES, SUBGRAPHS, DESCRIPTION, BUFFERS, METADATA = 0, 1, 2, 3, 4, 6


class OperatorCode_:
    DEPRECATED_BUILTIN_CODE, CUSTOM_CODE, VERSION, BUILTIN_CODE = 0, 1, 2, 3


class SubGraph_:
    TENSORS, INPUTS, OUTPUTS, OPERATORS = 0, 1, 2, 3


class Tensor_:
    SHAPE, TYPE, BUFFER, NAME, QUANTIZATION, SHAPE_SIGNATURE = 0, 1, 2, 3, 4, 7


class Quantization_:
    SCALE, ZERO_POINT = 2, 3


class Operator_:
    OPCODE_INDEX, INPUTS, OUTPUTS = 0, 1, 2


class Buffer_:
    DATA, OFFSET, SIZE = 0, 1, 2


class Metadata_:
    NAME, BUFFER = 0, 1


BUILTIN_CUSTOM = 32  # BuiltinOperator.CUSTOM
OFFSET_UNSET = 1  # Buffer.offset: 0 or 1 means "no external data" (1 is the converter's placeholder)


class FormatError(InputError):
    """The bytes are not a well-formed TFLite model."""


@lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    """Builtin operator code -> name, from the schema module the installed runtime ships."""
    for mod in ("ai_edge_litert.schema_py_generated", "tflite_runtime.schema_py_generated", "tensorflow.lite.python.schema_py_generated"):
        try:
            schema = __import__(mod, fromlist=["BuiltinOperator"])
            ops = schema.BuiltinOperator
            return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}
        except Exception:  # noqa: BLE001 - try the next runtime
            continue
    return {}


class _Reader:
    def __init__(self, buf: bytes):
        self.buf = memoryview(buf)
        self.n = len(buf)

    def _check(self, pos: int, size: int):
        if pos < 0 or pos + size > self.n:
            raise FormatError(f"offset {pos}+{size} outside the file ({self.n} bytes): the file is truncated or not a TFLite model")

    def u8(self, p):
        self._check(p, 1)
        return self.buf[p]

    def u16(self, p):
        self._check(p, 2)
        return struct.unpack_from("<H", self.buf, p)[0]

    def i32(self, p):
        self._check(p, 4)
        return struct.unpack_from("<i", self.buf, p)[0]

    def u32(self, p):
        self._check(p, 4)
        return struct.unpack_from("<I", self.buf, p)[0]

    def u64(self, p):
        self._check(p, 8)
        return struct.unpack_from("<Q", self.buf, p)[0]

    def field(self, table: int, index: int) -> int:
        """Absolute position of field ``index`` of the table at ``table``, or 0 when absent."""
        vtable = table - self.i32(table)
        vsize = self.u16(vtable)
        slot = 4 + 2 * index
        if slot + 2 > vsize:
            return 0
        off = self.u16(vtable + slot)
        return table + off if off else 0

    def deref(self, p: int) -> int:
        return p + self.u32(p)

    def table(self, t: int, i: int) -> int | None:
        p = self.field(t, i)
        return self.deref(p) if p else None

    def vector(self, t: int, i: int) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent."""
        p = self.field(t, i)
        if not p:
            return 0, 0
        v = self.deref(p)
        length = self.u32(v)
        self._check(v + 4, length)  # at least a byte per element
        return v + 4, length

    def tables(self, t: int, i: int) -> list[int]:
        start, n = self.vector(t, i)
        return [self.deref(start + 4 * k) for k in range(n)]

    def ints(self, t: int, i: int, fmt="i", size=4) -> list:
        start, n = self.vector(t, i)
        self._check(start, n * size)
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, start)) if n else []

    def string(self, t: int, i: int) -> str | None:
        p = self.field(t, i)
        if not p:
            return None
        s = self.deref(p)
        n = self.u32(s)
        self._check(s + 4, n)
        return bytes(self.buf[s + 4 : s + 4 + n]).decode("utf-8", "replace")

    def scalar(self, t: int, i: int, kind: str, default=0):
        p = self.field(t, i)
        if not p:
            return default
        return {"u8": self.u8, "i32": self.i32, "u32": self.u32, "u64": self.u64}[kind](p)


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

    def op_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for op in self.operators:
            hist[op.name] = hist.get(op.name, 0) + 1
        return dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))

    def float_tensors(self) -> list[TensorInfo]:
        """Non-constant float tensors (activations) — what a full-integer model should not have."""
        return [t for t in self.tensors if t.dtype in ("float32", "float16") and not t.is_constant]

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
    """Parse and validate TFLite bytes; raises :class:`FormatError` with a one-line reason."""
    where = path or "the model"
    if len(data) < 16:
        raise FormatError(f"{where} is too small ({len(data)} bytes) to be a TFLite model")
    if bytes(data[4:8]) != b"TFL3":
        raise FormatError(f"{where} is not a TFLite model (no 'TFL3' identifier); convert it with: edgecnn convert")
    r = _Reader(data)
    try:
        root = r.deref(0)
        version = r.scalar(root, Model_.VERSION, "u32")
        names = _builtin_names()
        opcodes = []
        for oc in r.tables(root, Model_.OPERATOR_CODES):
            code = max(r.scalar(oc, OperatorCode_.DEPRECATED_BUILTIN_CODE, "u8"), r.scalar(oc, OperatorCode_.BUILTIN_CODE, "i32"))
            custom = r.string(oc, OperatorCode_.CUSTOM_CODE)
            if code == BUILTIN_CUSTOM and custom:
                opcodes.append((custom, True, r.scalar(oc, OperatorCode_.VERSION, "i32", 1)))
            else:
                opcodes.append((names.get(code, f"BUILTIN_{code}"), False, r.scalar(oc, OperatorCode_.VERSION, "i32", 1)))
        buffers = r.tables(root, Model_.BUFFERS)
        buffer_sizes = []
        for b in buffers:
            start, n = r.vector(b, Buffer_.DATA)
            off, size = r.scalar(b, Buffer_.OFFSET, "u64"), r.scalar(b, Buffer_.SIZE, "u64")
            if off > OFFSET_UNSET and off + size > len(data):
                raise FormatError(f"{where} is truncated: a weight buffer lies past its end")
            buffer_sizes.append(n or size)
        subgraphs = r.tables(root, Model_.SUBGRAPHS)
        if not subgraphs:
            raise FormatError(f"{where} has no subgraph")
        tensors: list[TensorInfo] = []
        operators: list[OpInfo] = []
        main = subgraphs[0]
        for i, t in enumerate(r.tables(main, SubGraph_.TENSORS)):
            q = r.table(t, Tensor_.QUANTIZATION)
            scale = r.ints(q, Quantization_.SCALE, "f", 4) if q is not None else []
            zp = r.ints(q, Quantization_.ZERO_POINT, "q", 8) if q is not None else []
            buf_index = r.scalar(t, Tensor_.BUFFER, "u32")
            if buf_index >= max(1, len(buffers)):
                raise FormatError(f"{where} is corrupt: tensor {i} names buffer {buf_index} of {len(buffers)}")
            dtype_code = r.scalar(t, Tensor_.TYPE, "u8")
            tensors.append(
                TensorInfo(
                    index=i,
                    name=r.string(t, Tensor_.NAME) or f"tensor_{i}",
                    dtype=TENSOR_TYPES.get(dtype_code, f"type_{dtype_code}"),
                    shape=r.ints(t, Tensor_.SHAPE),
                    shape_signature=r.ints(t, Tensor_.SHAPE_SIGNATURE),
                    buffer=buf_index,
                    quantized=bool(scale),
                    scale=scale,
                    zero_point=zp,
                    is_constant=buf_index > 0 and buffer_sizes[buf_index] > 0,
                )
            )
        for i, op in enumerate(r.tables(main, SubGraph_.OPERATORS)):
            idx = r.scalar(op, Operator_.OPCODE_INDEX, "u32")
            if idx >= len(opcodes):
                raise FormatError(f"{where} is corrupt: operator {i} uses opcode {idx} of {len(opcodes)}")
            ins, outs = r.ints(op, Operator_.INPUTS), r.ints(op, Operator_.OUTPUTS)
            if any(k >= len(tensors) for k in ins + outs):
                raise FormatError(f"{where} is corrupt: operator {i} names a tensor that does not exist")
            name, custom, ver = opcodes[idx]
            operators.append(OpInfo(i, name, custom, ver, ins, outs))
        inputs, outputs = r.ints(main, SubGraph_.INPUTS), r.ints(main, SubGraph_.OUTPUTS)
        if any(k >= len(tensors) or k < 0 for k in inputs + outputs):
            raise FormatError(f"{where} is corrupt: its inputs/outputs name tensors that do not exist")
        metadata = {}
        for m in r.tables(root, Model_.METADATA):
            name = r.string(m, Metadata_.NAME) or ""
            bi = r.scalar(m, Metadata_.BUFFER, "u32")
            if bi < len(buffers):
                start, n = r.vector(buffers[bi], Buffer_.DATA)
                metadata[name] = bytes(r.buf[start : start + n])
        description = r.string(root, Model_.DESCRIPTION)
    except FormatError as exc:
        if str(exc).startswith(where):
            raise
        raise FormatError(f"{where}: {exc}") from None  # every model error names the file
    except (struct.error, IndexError, ValueError) as exc:
        raise FormatError(f"{where} is not a well-formed TFLite model ({exc})") from None
    return TFLiteFile(path, len(data), version, description, tensors, operators, inputs, outputs, len(subgraphs), metadata)


def read(path) -> TFLiteFile:
    """Parse a ``.tflite`` file; missing or unreadable files are :class:`InputError`."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"model file not found: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a .tflite file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror}") from None
    return parse(data, str(p))


def read_metadata(path) -> dict | None:
    """The ``edgecnn`` metadata of a model file (None for files edgecnn did not make)."""
    return read(path).edgecnn


def _schema():
    for mod in ("tensorflow.lite.python.schema_py_generated", "ai_edge_litert.schema_py_generated"):
        try:
            return __import__(mod, fromlist=["ModelT"])
        except ImportError:
            continue
    raise InputError("writing model metadata needs ai-edge-litert or tensorflow installed")


def with_metadata(model_bytes: bytes, meta: dict, name: str = METADATA_NAME) -> bytes:
    """Return the model bytes with the JSON metadata entry ``name`` set (replacing an older one)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model_bytes, 0))
    payload = json.dumps(meta, sort_keys=True, default=str).encode("utf-8")
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
