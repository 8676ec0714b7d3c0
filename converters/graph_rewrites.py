"""Rewrites of a converted float ``.tflite`` graph that the TFLite converter leaves undone.

Hard-swish: onnx2tf writes ONNX ``HardSwish`` as ``x * relu6(x + 3) / 6``, and the converter turns that
into four element-wise ops, ``MUL(x, 1/6) → ADD(0.5) → RELU_0_TO_1 → MUL(x, ·)``, each one more pass
over the feature map, instead of TFLite's one ``HARD_SWISH`` kernel (which XNNPACK, the GPU delegate
and every runtime edgecnn supports run natively). A MobileNetV3-style network has one after almost
every convolution, which made it slower than onnxruntime; :func:`fuse_hard_swish` puts the one op back.

Only float chains are rewritten (constants stored as float32, or float16 in an fp16 file); a quantized
graph is left as it is. The
conversion's reference check runs on the rewritten file, so a wrong rewrite is never written.
"""

from __future__ import annotations

import numpy as np

from edgecnn.core import tflite_file


def fuse_hard_swish(data: bytes) -> tuple[bytes, int]:
    """``data`` with every float hard-swish chain as one ``HARD_SWISH`` op; returns (bytes, chains fused)."""
    hist = tflite_file.parse(data).op_histogram()
    if not hist.get("RELU_0_TO_1") or not hist.get("MUL"):
        return data, 0  # nothing to look for: no flatbuffer round trip
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    ops = schema.BuiltinOperator
    fused = 0
    hard_swish = None
    for sg in model.subgraphs:
        chains = list(_chains(model, sg, ops))
        if not chains:
            continue
        if hard_swish is None:
            hard_swish = _opcode(model, ops.HARD_SWISH)
        drop = set()
        for final, x, inner in chains:
            op = sg.operators[final]
            op.opcodeIndex, op.inputs = hard_swish, np.array([x], dtype=np.int32)
            op.builtinOptionsType, op.builtinOptions = 0, None
            drop.update(inner)
        sg.operators = [op for i, op in enumerate(sg.operators) if i not in drop]
        fused += len(chains)
    if not fused:
        return data, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), fused


def _chains(model, sg, ops):
    """(index of the final MUL, x, indices of the three ops it replaces) for each hard-swish chain in ``sg``."""
    operators = sg.operators
    producer = {int(t): i for i, op in enumerate(operators) for t in op.outputs}
    readers: dict = {}
    for op in operators:
        for t in op.inputs:
            readers[int(t)] = readers.get(int(t), 0) + 1
    for t in sg.outputs:
        readers[int(t)] = readers.get(int(t), 0) + 1  # a graph output is read from outside

    def code(i):
        c = model.operatorCodes[operators[i].opcodeIndex]
        return max(c.builtinCode, c.deprecatedBuiltinCode)

    def plain(i):  # no fused activation on a MUL or ADD
        opts = operators[i].builtinOptions
        return opts is None or getattr(opts, "fusedActivationFunction", 0) == 0

    def from_op(t, kind):
        i = producer.get(int(t))
        return i if i is not None and code(i) == kind and plain(i) else None

    def constant(t, value):  # a float32 scalar, or a float16 one behind its DEQUANTIZE (an fp16 file)
        i = producer.get(int(t))
        if i is not None and code(i) == ops.DEQUANTIZE:
            return _scalar(model, sg, operators[i].inputs[0], value)
        return _scalar(model, sg, t, value)

    def operand(i, value):  # the operand of binary op i that is not the constant ``value``
        a, b = (int(t) for t in operators[i].inputs)
        return a if constant(b, value) else b if constant(a, value) else None

    taken: set = set()
    for i, op in enumerate(operators):
        if code(i) != ops.MUL or not plain(i) or len(op.inputs) != 2:
            continue
        for x, gate in ((int(op.inputs[0]), op.inputs[1]), (int(op.inputs[1]), op.inputs[0])):
            relu = from_op(gate, ops.RELU_0_TO_1)
            add = None if relu is None else from_op(operators[relu].inputs[0], ops.ADD)
            shifted = None if add is None else operand(add, 0.5)
            scale = None if shifted is None else from_op(shifted, ops.MUL)
            if scale is None or operand(scale, 1 / 6) != x:
                continue
            inner = (scale, add, relu)
            if taken & set(inner) or any(readers.get(int(operators[j].outputs[0]), 0) != 1 for j in inner):
                continue  # an intermediate read elsewhere must stay
            taken.update(inner)
            yield i, x, inner
            break


def _scalar(model, sg, t, value: float) -> bool:
    """Is tensor ``t`` a float32 (or float16) constant scalar holding ``value``, to its type's precision?"""
    tensor = sg.tensors[int(t)]
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    dtype, tolerance = {0: (np.float32, 1e-6), 1: (np.float16, 1e-3)}.get(tensor.type, (None, 0))  # TensorType FLOAT32, FLOAT16
    if data is None or dtype is None or len(data) != np.dtype(dtype).itemsize:
        return False
    return abs(float(np.frombuffer(bytes(data), dtype)[0]) - value) <= tolerance


def _opcode(model, builtin: int) -> int:
    """The index of ``builtin``'s operator code in ``model``, added where the file has none."""
    from tensorflow.lite.python import schema_py_generated as schema

    for i, c in enumerate(model.operatorCodes):
        if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
