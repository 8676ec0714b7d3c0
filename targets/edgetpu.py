"""Coral Edge TPU: a compatibility check that needs no compiler, and the ``edgetpu_compiler`` step.

The check reads the ``.tflite`` itself: every activation 8-bit quantized, static shapes, each op in
the compiler's supported list (``ops/edgetpu.toml``). The compiler maps ops in order, so the first
unsupported one splits the graph: it and everything after run on the CPU.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from edgecnn.core import tflite_file
from edgecnn.targets.coverage import delegate_coverage

ONCHIP_BYTES = 8e6  # the Edge TPU's SRAM for caching parameters (Coral docs: "roughly 8 MB")
STREAM_BYTES_PER_S = 3.2e8  # parameters beyond it cross USB 3 on every inference (an estimate)


def parameter_memory(info, onchip: float = ONCHIP_BYTES, rate: float = STREAM_BYTES_PER_S) -> dict:
    """Whether a model's parameters fit the Edge TPU's on-chip memory, and what streaming the rest costs."""
    weights = info.constant_bytes()
    over = max(0.0, weights - onchip)
    return {
        "parameter_bytes": int(weights),
        "onchip_bytes": int(onchip),
        "fits_on_chip": over == 0,
        "streamed_bytes": int(over),
        "stream_ms_per_inference": round(over / rate * 1e3, 2),
    }


def check(path_or_file) -> dict:
    info = path_or_file if isinstance(path_or_file, tflite_file.TFLiteFile) else tflite_file.read(path_or_file)
    memory = parameter_memory(info)
    cov = delegate_coverage(info, "edgetpu")
    edges = set(info.inputs) | set(info.outputs)
    float_acts = [t.name for t in info.float_tensors() if t.index not in edges]
    float_io = [t.name for t in info.float_tensors() if t.index in edges]
    dynamic = [t.name for t in info.tensors if t.shape_signature and -1 in t.shape_signature]
    problems = []
    if float_acts:
        problems.append(f"{len(float_acts)} float activation tensors (convert with --precision int8)")
    if dynamic:
        problems.append(f"{len(dynamic)} tensors with dynamic shapes")
    if cov["first_unsupported"]:
        problems.append(cov["split"])
    notes = []
    if not memory["fits_on_chip"]:
        notes.append(
            f"parameters are {memory['parameter_bytes'] / 1e6:.1f} MB, beyond the Edge TPU's ~8 MB on-chip memory: "
            f"{memory['streamed_bytes'] / 1e6:.1f} MB stream from the host on every inference "
            f"(about {memory['stream_ms_per_inference']:.0f} ms over USB 3, more over USB 2)"
        )
    if float_io and not float_acts:
        notes.append("float input/output: the QUANTIZE/DEQUANTIZE at the edges run on the host CPU (convert with --io uint8 to avoid them)")
    return {
        "compatible": not problems,
        "notes": notes,
        "problems": problems,
        "ops_total": cov["ops_total"],
        "ops_mapped": cov["ops_delegated"],
        "first_unsupported": cov["first_unsupported"],
        "parameter_memory": memory,
    }


_LOG_PATTERNS = {
    "ops_on_edgetpu": re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)"),
    "ops_on_cpu": re.compile(r"Number of operations that will run on CPU:\s*(\d+)"),
    "on_chip_memory": re.compile(r"On-chip memory used for caching model parameters:\s*([\d.]+\s*\w+)"),
    "off_chip_memory": re.compile(r"Off-chip memory used for streaming uncached model parameters:\s*([\d.]+\s*\w+)"),
    "subgraphs": re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)"),
}


def parse_compiler_log(text: str) -> dict:
    out = {}
    for key, pat in _LOG_PATTERNS.items():
        m = pat.search(text)
        if m:
            out[key] = int(m.group(1)) if m.group(1).isdigit() else m.group(1)
    cpu_ops = re.findall(r"^\s*([A-Z_0-9]+)\s+(\d+)\s+(.+?)\s*$", text, re.M)
    out["cpu_reasons"] = [{"op": o, "count": int(c), "why": w} for o, c, w in cpu_ops if "Mapped to Edge TPU" not in w]
    return out


def compile_for_edgetpu(path, compiler: str = "edgetpu_compiler", timeout: int = 600) -> dict:
    """Run ``edgetpu_compiler`` where it is installed; otherwise say so and leave the int8 model."""
    path = Path(path)
    pre = check(path)
    exe = shutil.which(compiler)
    if exe is None:
        return {
            "compiled": False,
            "check": pre,
            "message": f"edgetpu_compiler is not installed (it runs on x86-64 Debian/Ubuntu: apt-get install edgetpu-compiler "
            f"from Coral's repository); {path.name} is the ready-to-compile int8 model: edgetpu_compiler -s {path.name}",
        }
    proc = subprocess.run([exe, "-s", "-o", str(path.parent), str(path)], capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    compiled = path.with_name(path.stem + "_edgetpu.tflite")
    result = {"compiled": proc.returncode == 0 and compiled.exists(), "check": pre, "log": parse_compiler_log(log), "returncode": proc.returncode}
    if result["compiled"]:
        result["output"] = str(compiled)
    else:
        result["message"] = (log.strip().splitlines() or ["edgetpu_compiler failed"])[-1][:300]
    return result
