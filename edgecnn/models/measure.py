"""Model measurements: parameters, multiply-accumulates and peak activation memory.

MACs count the multiply-adds of convolutions and fully connected layers, the convention of the
papers (MobileNet's "mult-adds", ResNet's "FLOPs"); batch norm, activations, pooling and additions
are left out. Peak activation memory simulates running the graph in topological order, holding each
tensor from the operation that makes it until its last consumer has run (batch 1, float32).
"""

from __future__ import annotations

import math
from typing import Any

from edgecnn.models._tf import keras, layers

BYTES_PER_VALUE = 4


def _shape(t) -> tuple:
    return tuple(1 if d is None else int(d) for d in t.shape[1:])


def _size(t) -> int:
    return math.prod(_shape(t))


def layer_macs(layer, inputs, outputs) -> int:
    """Multiply-accumulates of one call of ``layer`` (batch 1)."""
    if not inputs or not outputs:
        return 0
    out = _shape(outputs[0])
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return math.prod(out) * kh * kw
    if isinstance(layer, layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        cin = _shape(inputs[0])[-1]
        spatial = math.prod(out[:-1])
        return spatial * cin * layer.depth_multiplier * kh * kw + spatial * cin * layer.depth_multiplier * out[-1]
    if isinstance(layer, layers.Conv2DTranspose):
        kh, kw = layer.kernel_size
        return _size(inputs[0]) * kh * kw * out[-1]
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        cin = _shape(inputs[0])[-1]
        return math.prod(out) * kh * kw * cin // layer.groups
    if isinstance(layer, layers.Dense):
        cin = _shape(inputs[0])[-1]
        return math.prod(out) * cin
    return 0


def _nodes_in_order(model):
    """The model's call nodes, inputs first (Keras functional graph, deepest depth first)."""
    by_depth = model._nodes_by_depth
    for depth in sorted(by_depth, reverse=True):
        yield from by_depth[depth]


def layer_table(model) -> list[dict[str, Any]]:
    """One row per layer call: name, type, output shape, parameters, MACs (nested models inlined)."""
    rows = []
    for node in _nodes_in_order(model):
        layer = node.operation
        if isinstance(layer, keras.Model):
            sub = layer_table(layer)
            rows.extend(r for r in sub if r["type"] != "InputLayer")
            continue
        outs = list(node.output_tensors)
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": [list(_shape(t)) for t in outs] if len(outs) > 1 else list(_shape(outs[0])),
                "params": int(layer.count_params()) if layer.built else 0,
                "macs": int(layer_macs(layer, list(node.input_tensors), outs)),
            }
        )
    return rows


def peak_activation_bytes(model) -> int:
    """Peak bytes of live activations when the graph runs operation by operation (batch 1, fp32)."""
    order = [n for n in _nodes_in_order(model)]
    last_use: dict[int, int] = {}
    for i, node in enumerate(order):
        for t in node.input_tensors:
            last_use[id(t)] = i
    model_outputs = {id(t) for t in model.outputs}
    live: dict[int, int] = {}
    peak = 0
    for i, node in enumerate(order):
        layer = node.operation
        extra = 0
        if isinstance(layer, keras.Model):
            # a nested model holds its own peak while it runs, its input already counted
            extra = max(0, peak_activation_bytes(layer) - sum(_size(t) * BYTES_PER_VALUE for t in node.input_tensors))
        for t in node.output_tensors:
            live[id(t)] = _size(t) * BYTES_PER_VALUE
        peak = max(peak, sum(live.values()) + extra)
        for t in node.input_tensors:
            if last_use.get(id(t)) == i and id(t) not in model_outputs:
                live.pop(id(t), None)
    return int(peak)


def stats(model) -> dict[str, Any]:
    """``{"params", "trainable_params", "macs", "peak_activation_bytes", "input_shape", "output_shape"}``."""
    table = layer_table(model)
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return {
        "params": int(model.count_params()),
        "trainable_params": int(trainable),
        "macs": int(sum(r["macs"] for r in table)),
        "peak_activation_bytes": peak_activation_bytes(model),
        "input_shape": [list(_shape(t)) for t in model.inputs][0] if len(model.inputs) == 1 else [list(_shape(t)) for t in model.inputs],
        "output_shape": list(_shape(model.outputs[0])) if len(model.outputs) == 1 else [list(_shape(t)) for t in model.outputs],
    }
