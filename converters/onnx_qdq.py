"""Already-quantized (QDQ) ONNX graphs folded to float before onnx2tf (:mod:`.onnx_import`): constant
weights are dequantized, QuantizeLinear→DequantizeLinear pairs on activations are removed, and
integer-only operators are refused. onnx2tf converts QDQ graphs without complaint but wrongly; folded,
the float model converts faithfully and edgecnn's own recipe quantizes it again."""

from __future__ import annotations

import numpy as np

from edgecnn.core.errors import InputError

LAYOUT_OPS = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Flatten"}  # the same on ints and floats

INTEGER_OPS = {
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "QLinearAdd",
    "QLinearMul",
    "QLinearGlobalAveragePool",
    "QLinearSigmoid",
    "QLinearLeakyRelu",
    "QLinearConcat",
    "DynamicQuantizeLinear",
}


def fold_qdq(model) -> int:
    """Fold QuantizeLinear/DequantizeLinear to float in place; returns how many nodes went."""
    from onnx import numpy_helper

    graph = model.graph
    bad = sorted({n.op_type for n in graph.node if n.op_type in INTEGER_OPS})
    if bad:
        raise InputError(
            f"this ONNX model computes with integer operators ({', '.join(bad)}), which edgecnn cannot fold back to "
            "float: export the float model and let edgecnn quantize it (--precision int8)"
        )
    inits = {i.name: i for i in graph.initializer}
    consts = {}
    for n in graph.node:  # Constant nodes holding scales and zero points
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)

    def value(name):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        return consts.get(name)

    producers = {o: n for n in graph.node for o in n.output}
    rename: dict[str, str] = {}
    drop = []
    new_inits = []
    for n in graph.node:
        if n.op_type != "DequantizeLinear":
            continue
        x, scale = value(n.input[0]), value(n.input[1])
        if x is not None and scale is not None:  # a constant (weights): dequantize once
            zp = value(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            new_inits.append(numpy_helper.from_array(_dequantized(x, scale, zp, axis), n.output[0]))
            drop.append(n)
            continue
        q = producers.get(n.input[0])
        while q is not None and q.op_type in LAYOUT_OPS:  # Q -> Transpose/Reshape -> DQ: the same on floats
            q = producers.get(q.input[0])
        if q is not None and q.op_type == "QuantizeLinear":  # fake quantization of an activation: pass through
            rename[n.output[0]] = n.input[0]
            rename[q.output[0]] = q.input[0]
            drop.append(n)
            if all(d is not q for d in drop):
                drop.append(q)
            continue
        raise InputError(
            f"cannot fold DequantizeLinear {n.name or n.output[0]} (its input is neither constant nor a QuantizeLinear): "
            "export the float model and let edgecnn quantize it"
        )
    if not drop:
        return 0
    keep = _rewire(graph, drop, rename, new_inits)
    leftover = [n.op_type for n in keep if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if leftover:
        raise InputError(f"{len(leftover)} quantize nodes could not be folded: export the float model")
    return len(drop)


def _dequantized(x, scale, zp, axis: int) -> np.ndarray:
    """(x - zero point) * scale in float32, per channel along ``axis`` where the scale is a vector."""
    xf, sc = x.astype(np.float32), scale.astype(np.float32)
    z = zp.astype(np.float32) if zp is not None else np.zeros_like(sc)
    if sc.ndim == 1 and sc.size > 1:
        shp = [1] * xf.ndim
        shp[axis] = sc.size
        sc, z = sc.reshape(shp), z.reshape(shp)
    return ((xf - z) * sc).astype(np.float32)


def _rewire(graph, drop: list, rename: dict, new_inits: list) -> list:
    """Remove the ``drop`` nodes, point their readers (and the graph's outputs) at what they passed
    through, keep the initializers still read and add the dequantized ones; returns the nodes kept."""
    dropped = {id(n) for n in drop}
    still_used = {i for n in graph.node if id(n) not in dropped for i in n.input}
    keep = [n for n in graph.node if id(n) not in dropped]
    for n in keep:
        for k, i in enumerate(n.input):
            while i in rename:
                i = rename[i]
            n.input[k] = i
    for o in graph.output:
        while o.name in rename:
            o.name = rename[o.name]
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in keep for i in n.input} | {o.name for o in graph.output}
    kept_inits = [i for i in graph.initializer if i.name in used or i.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits + [i for i in new_inits if i.name in used])
    return keep
