"""Per-delegate op coverage of a ``.tflite`` graph from our own rule tables (``ops/*.toml``).

TensorFlow's ``Analyzer(gpu_compatibility=True)`` calls every model compatible in 2.21 (Flex ops
included), so the rules are kept here as data, one table per delegate, and tested against what the
real interpreter does where it can be observed (XNNPACK).
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from edgecnn.core.tflite_file import TFLiteFile

OPS_DIR = Path(__file__).resolve().parent / "ops"


@lru_cache(maxsize=None)
def rules(delegate: str) -> dict:
    data = tomllib.loads((OPS_DIR / f"{delegate}.toml").read_text())
    data["ops"] = {k: set(v) for k, v in data.get("ops", {}).items()}
    return data


def _kind(dtype: str) -> str:
    return {"float32": "float", "float16": "float", "int8": "int8", "uint8": "uint8", "int16": "int16"}.get(dtype, dtype)


def op_mode(model: TFLiteFile, op) -> str:
    """How an op computes: float, int8, uint8, int16, hybrid; QUANTIZE/DEQUANTIZE as 'in->out'."""
    ins = [model.tensors[i] for i in op.inputs if i >= 0]
    outs = [model.tensors[i] for i in op.outputs if i >= 0]
    if op.name in ("QUANTIZE", "DEQUANTIZE") and ins and outs:
        return f"{ins[0].dtype}->{outs[0].dtype}"
    acts = [t for t in ins if not t.is_constant] + outs
    kinds = {_kind(t.dtype) for t in acts if t.dtype not in ("int32", "int64", "bool")}
    if "int16" in kinds:
        return "int16"
    if "float" in kinds:
        consts = {t.dtype for t in ins if t.is_constant}
        return "hybrid" if ("int8" in consts and op.name not in ("DEQUANTIZE",)) else "float"
    for k in ("int8", "uint8"):
        if k in kinds:
            return k
    return next(iter(kinds), "float")


def _rank_ok(model: TFLiteFile, op, max_rank) -> bool:
    if not max_rank:
        return True
    return all(len(model.tensors[i].shape) <= max_rank for i in op.inputs + op.outputs if i >= 0)


def delegate_coverage(model: TFLiteFile, delegate: str) -> dict:
    """Which ops ``delegate`` takes, how many partitions the graph splits into, what stays on CPU."""
    table = rules(delegate)
    supported_ops = table["ops"]
    flags = []
    unsupported = []
    for op in model.operators:
        mode = op_mode(model, op)
        ok = (not op.custom) and mode in supported_ops.get(op.name, set()) and _rank_ok(model, op, table.get("max_rank"))
        if delegate == "edgetpu" and any(model.tensors[i].shape_signature and -1 in model.tensors[i].shape_signature for i in op.inputs + op.outputs if i >= 0):
            ok = False
        flags.append(ok)
        if not ok:
            unsupported.append({"index": op.index, "op": op.name, "mode": mode})
    partitions = sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))
    result = {
        "delegate": delegate,
        "ops_total": len(flags),
        "ops_delegated": sum(flags),
        "fraction": round(sum(flags) / len(flags), 4) if flags else 0.0,
        "partitions": partitions,
        "unsupported": _summarise(unsupported),
        "source": table.get("source", ""),
    }
    if delegate == "edgetpu":
        result.update(_edgetpu_split(model, flags, unsupported))
    return result


def _edgetpu_split(model: TFLiteFile, flags: list[bool], unsupported: list[dict]) -> dict:
    """The Edge TPU compiler maps ops in order until the first one it cannot map.

    A float->int QUANTIZE as the first op and int->float DEQUANTIZE ops at the end run on the CPU at
    the graph's edges without splitting it (float IO on an otherwise integer model).
    """
    n = len(flags)
    edge = set()
    for op in model.operators:
        mode = op_mode(model, op)
        if op.name == "QUANTIZE" and mode.startswith("float32->") and all(i in model.inputs for i in op.inputs):
            edge.add(op.index)
        if op.name == "DEQUANTIZE" and all(o in model.outputs for o in op.outputs):
            edge.add(op.index)
    blocking = [u for u in unsupported if u["index"] not in edge]
    first = blocking[0] if blocking else None
    mapped = sum(1 for i in range(first["index"] if first else n) if flags[i])
    return {
        "ops_delegated": mapped,
        "fraction": round(mapped / n, 4) if n else 0.0,
        "partitions": 1 if mapped else 0,
        "cpu_edge_ops": sorted(edge),
        "first_unsupported": first,
        "split": None
        if first is None
        else f"op {first['index']} ({first['op']}, {first['mode']}) and the {n - first['index'] - 1} ops after it run on the CPU",
        "unsupported": _summarise(blocking),
    }


def _summarise(unsupported: list[dict]) -> list[dict]:
    """Group unsupported ops by (op, mode) with their positions."""
    groups: dict[tuple, list[int]] = {}
    for u in unsupported:
        groups.setdefault((u["op"], u["mode"]), []).append(u["index"])
    return [{"op": k[0], "mode": k[1], "count": len(v), "positions": v[:20]} for k, v in groups.items()]


def coverage(model: TFLiteFile) -> dict:
    """Coverage for every delegate we keep rules for."""
    return {d: delegate_coverage(model, d) for d in ("xnnpack", "gpu", "edgetpu")}
