"""The rules a ``.tflite`` file must meet before an interpreter sees it: everything LiteRT trusts without
checking (tensor and opcode indices, optional inputs, quantization parameters, constant buffer sizes,
sparse index arrays, shapes). Each rule is checked against real files from Google's and others'
packages too (tests/test_any_model.py): a file this refuses but LiteRT runs is a false refusal.
Device-safe: the standard library only; :mod:`edgecnn.core.tflite_file` reads the file and calls it.
"""

from __future__ import annotations

from edgecnn.core.errors import InputError


class FormatError(InputError):
    """The bytes are not a well-formed TFLite model, or hold values the interpreter would trust and
    crash on."""


# Inputs an operator may leave out (index -1), by operator: bias of the convolutions and fully
# connected; the LSTM/RNN families have many optional inputs (any but the first).
OPTIONAL_INPUTS = {
    "CONV_2D": {2},
    "DEPTHWISE_CONV_2D": {2},
    "FULLY_CONNECTED": {2},
    "TRANSPOSE_CONV": {3},
    "CONV_3D": {2},
    "CONV_3D_TRANSPOSE": {3},
    "SVDF": {3},
    "BATCH_MATMUL": set(),
}
ANY_OPTIONAL = ("LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN", "RNN")
ITEM_BYTES = {
    "float32": 4,
    "float16": 2,
    "int32": 4,
    "uint8": 1,
    "int64": 8,
    "bool": 1,
    "int16": 2,
    "complex64": 8,
    "int8": 1,
    "float64": 8,
    "complex128": 16,
    "uint64": 8,
    "uint32": 4,
    "uint16": 2,
    "bfloat16": 2,
}
ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535), "int4": (-8, 7)}
MAX_RANK, MAX_ELEMENTS = 8, 2**31 - 1
# Operators whose output has their first input's shape: a file that declares otherwise makes the
# interpreter allocate one size and read another (found by the fuzzer: a DEQUANTIZE output feeding a
# depthwise filter, declared 65536 wide, crashed the host at random)
SAME_SHAPE_OPS = {
    "DEQUANTIZE",
    "QUANTIZE",
    "CAST",
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "RELU_0_TO_1",
    "LOGISTIC",
    "TANH",
    "HARD_SWISH",
    "LEAKY_RELU",
    "ELU",
    "GELU",
    "ABS",
    "NEG",
    "EXP",
    "SQRT",
    "RSQRT",
    "SQUARE",
    "LOG",
    "SIN",
    "COS",
    "FLOOR",
    "CEIL",
    "ROUND",
    "SIGN",
    "LOGICAL_NOT",
}
OFFSET_UNSET = 1  # Buffer.offset: 0 or 1 means "no external data" (1 is the converter's placeholder)


def _vec(obj, name: str, n_max: int) -> list:
    """A vector field through the schema's lazy API, its length checked before anything is read."""
    n = getattr(obj, name + "Length")()
    if n < 0 or n > n_max:
        raise FormatError(f"a {name} vector claims {n} entries")
    if n == 0:
        return []
    return getattr(obj, name + "AsNumpy")().tolist()


def _count(n: int, n_max: int, what: str) -> int:
    if n < 0 or n > n_max:
        raise FormatError(f"it claims {n} {what} entries")
    return n


_INDEX_VECTORS = {1: "Int32Vector", 2: "Uint16Vector", 3: "Uint8Vector"}  # SparseIndexVector's union


def _sparsity(sp, n_max: int, schema) -> dict | None:
    """A sparse constant's parameters (the compressed values plus index arrays that DENSIFY expands), as
    plain lists; None for a dense tensor."""
    if sp is None:
        return None
    dims = []
    for i in range(_count(sp.DimMetadataLength(), n_max, "sparsity dimension")):
        d = sp.DimMetadata(i)
        dim = {"format": d.Format(), "dense_size": d.DenseSize()}
        for field_ in ("ArraySegments", "ArrayIndices"):
            kind, table = getattr(d, field_ + "Type")(), getattr(d, field_)()
            if table is None or kind == 0:
                dim[field_] = None
                continue
            if kind not in _INDEX_VECTORS:
                raise FormatError(f"a sparsity dimension has an unknown index vector type {kind}")
            vec = getattr(schema, _INDEX_VECTORS[kind])()
            vec.Init(table.Bytes, table.Pos)
            dim[field_] = _vec(vec, "Values", n_max)
        dims.append(dim)
    return {"traversal_order": _vec(sp, "TraversalOrder", n_max), "block_map": _vec(sp, "BlockMap", n_max), "dims": dims}


def _sparse_values(t, sub: str) -> int:
    """How many values a sparse tensor's buffer must hold, by walking its dimensions in traversal order
    as DENSIFY does (TFLite's FormatConverter): a dense dimension multiplies the count by its size, a
    CSR one replaces it by the last of its segments; every index array is checked on the way."""
    sp = t.sparsity
    rank, order, block_map, dims = len(t.shape), sp["traversal_order"], sp["block_map"], sp["dims"]
    where = f"tensor {t.index}{sub}'s sparsity"
    if sorted(order) != list(range(len(order))) or len(order) != rank + len(block_map) or len(dims) != len(order):
        raise FormatError(f"{where} has a traversal order {order} that does not fit rank {rank} with {len(block_map)} blocks")
    if any(not 0 <= b < rank for b in block_map):
        raise FormatError(f"{where} blocks a dimension outside rank {rank}")
    position = {dim: pos for pos, dim in enumerate(order)}
    count = 1
    for pos, d in enumerate(dims):
        if d["format"] == 0:  # DENSE
            if d["dense_size"] <= 0:
                raise FormatError(f"{where} has a dense dimension of size {d['dense_size']}")
            count *= d["dense_size"]
            continue
        seg, idx = d["ArraySegments"], d["ArrayIndices"]
        if d["format"] != 1 or seg is None or idx is None:
            raise FormatError(f"{where} has a sparse dimension without segments and indices")
        if len(seg) != count + 1 or seg[0] != 0 or any(b < a for a, b in zip(seg, seg[1:])) or seg[-1] != len(idx):
            raise FormatError(f"{where} has segments that do not index its {len(idx)} indices")
        dim = order[pos]  # an index must fall inside its dimension (blocked: the count of blocks)
        if dim < rank:
            size = t.shape[dim]
            if dim in block_map:
                size //= max(1, dims[position[rank + block_map.index(dim)]]["dense_size"])
        else:
            size = dims[pos]["dense_size"] or t.shape[block_map[dim - rank]]
        if idx and (min(idx) < 0 or max(idx) >= size):
            raise FormatError(f"{where} has an index outside its dimension of {size}")
        count = len(idx)
    if count > MAX_ELEMENTS:
        raise FormatError(f"{where} claims {count} values")
    return count


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
            want = _bytes_for(t.dtype, _sparse_values(t, sub) if t.sparsity else count)
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
