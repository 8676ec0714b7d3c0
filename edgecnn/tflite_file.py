"""Read (and, on the workstation, annotate) ``.tflite`` files without an interpreter.

The TFLite flatbuffer read through the schema bindings LiteRT ships (``schema_py_generated``, lazy
API: no copy of the weights): operator codes, tensors with their types, shapes and quantization,
operators, buffers and the model metadata. :func:`validate_graph` checks everything the interpreter
trusts without checking (indices, optional inputs, quantization parameters, constant buffer sizes,
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

from edgecnn.errors import InputError

METADATA_NAME = "edgecnn"
TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16",
    8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64", 13: "resource", 14: "variant",
    15: "uint32", 16: "uint16", 17: "int4", 18: "bfloat16",
}


class FormatError(InputError):
    """The bytes are not a well-formed TFLite model, or hold values the interpreter would trust and
    crash on."""


@lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    """Builtin operator code -> name, from the schema module the installed runtime ships."""
    ops = _schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


# Inputs an operator may leave out (index -1), by operator: bias of the convolutions and fully
# connected; the LSTM/RNN families have many optional inputs (any but the first).
OPTIONAL_INPUTS = {"CONV_2D": {2}, "DEPTHWISE_CONV_2D": {2}, "FULLY_CONNECTED": {2}, "TRANSPOSE_CONV": {3}, "CONV_3D": {2},
                   "CONV_3D_TRANSPOSE": {3}, "SVDF": {3}, "BATCH_MATMUL": set()}
ANY_OPTIONAL = ("LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
                "BIDIRECTIONAL_SEQUENCE_RNN", "RNN")
ITEM_BYTES = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1, "int16": 2, "complex64": 8, "int8": 1,
              "float64": 8, "complex128": 16, "uint64": 8, "uint32": 4, "uint16": 2, "bfloat16": 2}
ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535), "int4": (-8, 7)}
MAX_RANK, MAX_ELEMENTS = 8, 2**31 - 1
# Operators whose output has their first input's shape: a file that declares otherwise makes the
# interpreter allocate one size and read another (found by the fuzzer: a DEQUANTIZE output feeding a
# depthwise filter, declared 65536 wide, crashed the host at random)
SAME_SHAPE_OPS = {"DEQUANTIZE", "QUANTIZE", "CAST", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "HARD_SWISH",
                  "LEAKY_RELU", "ELU", "GELU", "ABS", "NEG", "EXP", "SQRT", "RSQRT", "SQUARE", "LOG", "SIN", "COS", "FLOOR", "CEIL",
                  "ROUND", "SIGN", "LOGICAL_NOT"}
OFFSET_UNSET = 1  # Buffer.offset: 0 or 1 means "no external data" (1 is the converter's placeholder)


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


def _vec(obj, name: str, n_max: int) -> list:
    """A vector field through the schema's lazy API, its length checked before anything is read."""
    n = getattr(obj, name + "Length")()
    if n < 0 or n > n_max:
        raise FormatError(f"a {name} vector claims {n} entries")
    if n == 0:
        return []
    return getattr(obj, name + "AsNumpy")().tolist()


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
        buffers = []  # (data length, external offset, external size)
        for i in range(_count(m.BuffersLength(), n_max, "buffer")):
            bf = m.Buffers(i)
            buffers.append((_count(bf.DataLength(), n_max, "buffer data") if bf is not None else 0,
                            bf.Offset() if bf is not None else 0, bf.Size() if bf is not None else 0))
        n_sub = _count(m.SubgraphsLength(), n_max, "subgraph")
        if not n_sub:
            raise FormatError("it has no subgraph")
        graphs = []
        for g in range(n_sub):
            sg = m.Subgraphs(g)
            tensors = []
            for i in range(_count(sg.TensorsLength(), n_max, "tensor")):
                t = sg.Tensors(i)
                q = t.Quantization()
                scale = _vec(q, "Scale", n_max) if q is not None else []
                zp = _vec(q, "ZeroPoint", n_max) if q is not None else []
                dtype_code = t.Type()
                buf_index = t.Buffer()
                tensors.append(TensorInfo(
                    index=i,
                    name=(t.Name() or b"").decode("utf-8", "replace") or f"tensor_{i}",
                    dtype=TENSOR_TYPES.get(dtype_code, f"type_{dtype_code}"),
                    shape=_vec(t, "Shape", n_max),
                    shape_signature=_vec(t, "ShapeSignature", n_max),
                    buffer=buf_index,
                    quantized=bool(scale),
                    scale=scale,
                    zero_point=zp,
                    is_constant=0 < buf_index < len(buffers) and (buffers[buf_index][0] > 0 or buffers[buf_index][1] > OFFSET_UNSET),
                    quantized_dimension=q.QuantizedDimension() if q is not None else 0,
                ))
            operators = []
            for i in range(_count(sg.OperatorsLength(), n_max, "operator")):
                op = sg.Operators(i)
                idx = op.OpcodeIndex()
                if idx >= len(opcodes):
                    raise FormatError(f"operator {i} uses opcode {idx} of {len(opcodes)}")
                name, custom, ver = opcodes[idx]
                operators.append(OpInfo(i, name, custom, ver, _vec(op, "Inputs", n_max), _vec(op, "Outputs", n_max)))
            graphs.append((tensors, operators, _vec(sg, "Inputs", n_max), _vec(sg, "Outputs", n_max)))
        metadata = {}
        for i in range(_count(m.MetadataLength(), n_max, "metadata")):
            md = m.Metadata(i)
            bi = md.Buffer()
            if bi >= len(buffers):
                raise FormatError(f"metadata {i} names buffer {bi} of {len(buffers)}")
            bf = m.Buffers(bi)
            metadata[(md.Name() or b"").decode("utf-8", "replace")] = bf.DataAsNumpy().tobytes() if buffers[bi][0] else b""
        description = m.Description()
        info = TFLiteFile(path, len(data), m.Version(), description.decode("utf-8", "replace") if description else None,
                          graphs[0][0], graphs[0][1], graphs[0][2], graphs[0][3], n_sub, metadata)
        for g, (tensors, operators, ins, outs) in enumerate(graphs):
            validate_graph(g, tensors, operators, ins, outs, buffers, len(data))
    except FormatError as exc:
        raise FormatError(f"{where} is corrupt: {exc}") from None  # every model error names the file
    except struct.error:
        raise FormatError(f"{where} is truncated or damaged: an offset in it points past its end ({len(data)} bytes)") from None
    except (IndexError, ValueError, TypeError, AttributeError, OverflowError, UnicodeDecodeError) as exc:
        raise FormatError(f"{where} is not a well-formed TFLite model ({type(exc).__name__}: {str(exc)[:120]})") from None
    return info


def _count(n: int, n_max: int, what: str) -> int:
    if n < 0 or n > n_max:
        raise FormatError(f"it claims {n} {what} entries")
    return n


def validate_graph(g: int, tensors, operators, inputs, outputs, buffers, file_size: int) -> None:
    """What the interpreter trusts without checking, checked: tensor and opcode indices, optional
    inputs, quantization parameters, constant buffer sizes against shape x type, shapes and ranks."""
    n = len(tensors)
    sub = f" in subgraph {g}" if g else ""
    for t in tensors:
        if t.dtype.startswith("type_"):
            raise FormatError(f"tensor {t.index}{sub} has an unknown type code {t.dtype[5:]}")
        if len(t.shape) > MAX_RANK or any(d < 0 for d in t.shape) or any(d < -1 for d in t.shape_signature):
            raise FormatError(f"tensor {t.index}{sub} has an impossible shape {t.shape}")
        count = 1
        for d in t.shape:
            count *= d
        if count > MAX_ELEMENTS:
            raise FormatError(f"tensor {t.index}{sub} claims {count} elements")
        if t.buffer < 0 or t.buffer >= max(1, len(buffers)):
            raise FormatError(f"tensor {t.index}{sub} names buffer {t.buffer} of {len(buffers)}")
        if t.scale or t.zero_point:
            _check_quantization(t, sub)
        if 0 < t.buffer < len(buffers):
            length, offset, size = buffers[t.buffer]
            if offset > OFFSET_UNSET:
                if offset + size > file_size:
                    raise FormatError(f"tensor {t.index}{sub}: its weights lie past the end of the file (truncated)")
                length = size
            want = _bytes_for(t.dtype, count)
            if length and want is not None and length != want:
                raise FormatError(f"tensor {t.index}{sub} is {t.dtype}{t.shape} ({want} bytes) but its buffer holds {length}")
    for op in operators:
        optional = OPTIONAL_INPUTS.get(op.name, set())
        for pos, k in enumerate(op.inputs):
            if k == -1 and (pos in optional or (pos > 0 and op.name in ANY_OPTIONAL)):
                continue
            if not 0 <= k < n:
                raise FormatError(f"operator {op.index} ({op.name}){sub} input {pos} names tensor {k} of {n}")
        for pos, k in enumerate(op.outputs):
            if not 0 <= k < n:
                raise FormatError(f"operator {op.index} ({op.name}){sub} output {pos} names tensor {k} of {n}")
        if op.name in SAME_SHAPE_OPS and op.inputs and op.outputs and op.inputs[0] >= 0:
            src, dst = tensors[op.inputs[0]].shape, tensors[op.outputs[0]].shape
            if src and dst and src != dst:
                raise FormatError(f"operator {op.index} ({op.name}){sub} turns shape {src} into {dst}")
    for k in inputs + outputs:
        if not 0 <= k < n:
            raise FormatError(f"subgraph {g} inputs/outputs name tensor {k} of {n}")


def _check_quantization(t, sub: str) -> None:
    import math

    if any(not math.isfinite(s) or s <= 0 for s in t.scale):
        raise FormatError(f"tensor {t.index}{sub} has a quantization scale that is not a finite positive number")
    if t.zero_point and len(t.zero_point) != len(t.scale):
        raise FormatError(f"tensor {t.index}{sub} has {len(t.scale)} scales but {len(t.zero_point)} zero points")
    lo, hi = ZERO_POINT_RANGE.get(t.dtype, (-(2**63), 2**63 - 1))
    if any(not lo <= z <= hi for z in t.zero_point):
        raise FormatError(f"tensor {t.index}{sub} has a zero point outside the {t.dtype} range")
    if len(t.scale) > 1:
        qd = t.quantized_dimension
        if not 0 <= qd < len(t.shape) or t.shape[qd] != len(t.scale):
            raise FormatError(f"tensor {t.index}{sub} has {len(t.scale)} per-channel scales for dimension {qd} of shape {t.shape}")


def _bytes_for(dtype: str, count: int) -> int | None:
    if dtype == "int4":
        return (count + 1) // 2
    item = ITEM_BYTES.get(dtype)
    return item * count if item else None


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
