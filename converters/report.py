"""The conversion report's facts about a written file: size, op histogram, float tensors, op coverage
per delegate, and which interpreters can load it."""

from __future__ import annotations

from edgecnn.targets.coverage import coverage


def describe_file(info, float_size: int) -> dict:
    """The report's facts about the written file (parsed): size, op histogram, float tensors, coverage."""
    return {
        "size_bytes": info.size_bytes,
        "size_ratio": round(info.size_bytes / float_size, 4),
        "ops": info.op_histogram(),
        "float_tensors": len(info.float_tensors()),
        "input": {"shape": info.tensors[info.inputs[0]].shape, "dtype": info.tensors[info.inputs[0]].dtype},
        "output_dtypes": [info.tensors[i].dtype for i in info.outputs],
        "coverage": coverage(info),
    }


def runtimes_that_load(info, precision) -> dict:
    """Which interpreters can load this file (measured with LiteRT 2.3 and tflite-runtime 2.14; see "Interpreter" in README.md)."""
    newest = max((op.version for op in info.operators), default=1)
    return {
        "ai_edge_litert": True,
        "tensorflow": True,
        "tflite_runtime_2.14": precision in ("fp32", "fp16", "int8") and newest <= 6,
        "note": "tflite-runtime 2.14 cannot load TF 2.21 dynamic-range models (newer op versions) and runs int8 without XNNPACK",
    }
