"""ONNX as a convert source: an ``.onnx`` file (PyTorch's ``torch.onnx.export``, Keras2ONNX, …) into a
TensorFlow SavedModel that the usual recipes take.

The steps, each a fix for something that went wrong here:
1. work on a copy (onnx2tf rewrites its input file in place);
2. already-quantized (QDQ) graphs are folded to float (:mod:`.onnx_qdq`): constant weights are dequantized, and
   QuantizeLinear→DequantizeLinear pairs on activations are removed. onnx2tf converts QDQ graphs
   without complaint but wrongly; folded, the float model converts faithfully and our own recipe
   quantizes it again. Integer-only operators (QLinearConv, ConvInteger, …) are refused;
3. every input gets a static batch-1 shape (``--input-shape``, else the file's own dims, batch 1);
4. onnxruntime folds the shape arithmetic that static shapes make constant (onnx2tf otherwise guesses
   dynamic sizes, and fails on reflect padding);
5. onnx2tf (1.28.x, the ``[onnx]`` extra) makes the SavedModel, NCHW turned into NHWC, in a child
   process: its output stays out of ours, and with every proxy pointed nowhere it cannot download a
   calibration sample (it does that for 4-D, 3-channel inputs); we never ask it to quantize.

:func:`reference_check` then compares the fp32 TFLite with onnxruntime on real images.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.converters.onnx_qdq import fold_qdq
from edgecnn.core.errors import EdgecnnError, InputError, first_line
from edgecnn.core.files import temp_dir

ONNX2TF_PIN = "onnx2tf>=1.28,<1.29"


@dataclass
class OnnxImport:
    """What :func:`import_onnx` made: the SavedModel and the float ONNX it came from."""

    saved_model: str
    float_onnx: str  # the static, QDQ-folded ONNX that was converted (onnxruntime's reference runs this)
    inputs: dict  # name -> {"shape": [...] (ONNX layout), "layout": "NCHW" | "NHWC" | "other"}
    outputs: list
    qdq_folded: int = 0  # QDQ nodes removed
    opset: int | None = None
    producer: str = ""
    notes: list = field(default_factory=list)


def _need_packages():
    missing = [p for p in ("onnx", "onnxruntime", "onnx2tf") if importlib.util.find_spec(p) is None]
    if missing:
        raise InputError(f"ONNX sources need {', '.join(missing)}: pip install 'edgecnn[onnx]' (onnx2tf 1.28.x beside TensorFlow)")


def _load(path: Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - DecodeError and friends
        raise InputError(f"{path} is not a readable ONNX model: {first_line(exc, 160)}") from None


def parse_shape(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        dims = [int(d) for d in str(text).replace("x", ",").split(",") if d.strip()]
    except ValueError:
        raise InputError(f"--input-shape {text!r}: expected comma-separated integers, e.g. 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise InputError(f"--input-shape {text!r}: every dimension must be a positive integer")
    return dims


def _layout(shape: list[int], model=None, name: str | None = None) -> str:
    """NCHW (PyTorch's) or NHWC (a TensorFlow-born graph, whose first op transposes it to NCHW)."""
    if len(shape) != 4:
        return "other"
    if model is not None and name is not None:
        for n in model.graph.node:
            if n.op_type == "Transpose" and name in n.input:
                perm = next((list(a.ints) for a in n.attribute if a.name == "perm"), None)
                if perm == [0, 3, 1, 2]:
                    return "NHWC"
    if shape[1] == 1 and shape[2] == 1 and shape[3] > 4:  # a (1, 1, 1, C) vector: channels last
        return "NHWC"
    if shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4):
        return "NCHW"
    if shape[3] in (1, 3, 4):
        return "NHWC"
    return "NCHW"


_SCOPE_FIRST = re.compile(r"[A-Za-z0-9.]")
_SCOPE_REST = re.compile(r"[^A-Za-z0-9_.\-/]")


def sanitize_node_names(model) -> int:
    """Node names that TensorFlow rejects as scope names (PaddlePaddle's ``Softmax@0``, spaces, colons),
    made valid and kept unique, in place; returns the names changed. Tensor names are left alone: the
    graph's inputs and outputs keep the names the user knows."""
    seen, changed = set(), []
    for node in model.graph.node:
        name = _SCOPE_REST.sub("_", node.name) if node.name else ""
        if name and not _SCOPE_FIRST.match(name[0]):
            name = "n" + name
        base, k = name, 1
        while name and name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        if name != node.name:
            changed.append(node.name)
            node.name = name
    return changed


def _static_shapes(model, given: dict) -> dict:
    """Fix every input to a static batch-1 shape; returns name -> shape."""
    init_names = {i.name for i in model.graph.initializer}
    shapes = {}
    for inp in model.graph.input:
        if inp.name in init_names:
            continue
        dims = inp.type.tensor_type.shape.dim
        if inp.name in given:
            want = given[inp.name]
            if len(want) != len(dims):
                raise InputError(f"--input-shape {','.join(map(str, want))} has {len(want)} dimensions but input {inp.name} has {len(dims)}")
        else:
            want = []
            for k, d in enumerate(dims):
                if d.dim_value > 0:
                    want.append(int(d.dim_value))
                elif k == 0:
                    want.append(1)  # the batch: 1
                else:
                    raise InputError(
                        f"input {inp.name} has a dynamic dimension {d.dim_param or '?'} at axis {k}: pass --input-shape with every dimension, e.g. 1,3,224,224"
                    )
        if want and len(want) >= 2 and want[0] != 1:
            raise InputError(f"input {inp.name}: edgecnn converts batch 1, got batch {want[0]}")
        for d, v in zip(dims, want):
            d.ClearField("dim_param")
            d.dim_value = v
        shapes[inp.name] = want
    del model.graph.value_info[:]  # recomputed from the static inputs
    for o in model.graph.output:
        for d in o.type.tensor_type.shape.dim:
            d.ClearField("dim_param")
            d.ClearField("dim_value")
    return shapes


def _fold_constants(src: Path, dst: Path) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(dst)
    so.log_severity_level = 3
    try:
        ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"onnxruntime cannot load the model: {first_line(exc, 200)}") from None


_CHILD = r"""
import json, sys, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
args = json.loads(sys.argv[1])
import onnx2tf
onnx2tf.convert(input_onnx_file_path=args["onnx"], output_folder_path=args["out"], output_signaturedefs=True,
                non_verbose=True, keep_nwc_or_nhwc_or_ndhwc_input_names=args["keep_nhwc"] or None, **args["extra"])
"""


ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def _sample_images(folder: Path) -> None:
    """onnx2tf runs every all-image-input model once on 20 sample pictures, which it downloads unless the
    file is in its working folder: give it ours (real photos, RGB in [0, 1], 128x128)."""
    import cv2

    from edgecnn.calibration.datasets import sample_photos

    photos = sample_photos()
    if not photos:
        raise InputError("no sample photos for onnx2tf: pip install 'edgecnn[data]'")
    batch = [cv2.resize(photos[i % len(photos)], (128, 128), interpolation=cv2.INTER_AREA)[:, :, ::-1] for i in range(20)]
    np.save(folder / ONNX2TF_SAMPLE, (np.stack(batch).astype(np.float32) / 255.0))


# What onnx2tf's README offers when a conversion fails, cheapest first: its ONNX simplifier off (it can
# break graphs), grouped convolutions split, then a parameter-replacement file it generates itself.
ONNX2TF_FALLBACKS = (
    ("without onnxsim", {"not_use_onnxsim": True}),
    ("grouped convolutions split", {"not_use_onnxsim": True, "disable_group_convolution": True}),
    ("onnx2tf's generated parameter replacement", {"auto_generate_json_on_error": True}),
)


def _onnx2tf(onnx_path: Path, out: Path, keep_nhwc: list, timeout: int) -> str | None:
    """Convert with onnx2tf, retrying with its documented fixes; returns the fix that was needed (None:
    none), or raises one line naming everything tried. onnx2tf rewrites its input in place, so every
    try starts from a pristine copy (all in this run's own work folder)."""
    import shutil

    pristine = onnx_path.with_suffix(".pristine.onnx")
    shutil.copyfile(onnx_path, pristine)
    tried, why = [], ""
    for label, extra in (("as it is", {}),) + ONNX2TF_FALLBACKS:
        if tried:
            shutil.rmtree(out, ignore_errors=True)
            shutil.copyfile(pristine, onnx_path)
        why = _onnx2tf_once(onnx_path, out, keep_nhwc, timeout, extra)
        if why is None:
            pristine.unlink()
            return None if not tried else label
        tried.append(label)
        if why.startswith("did not finish"):
            break  # a timeout would only repeat
    pristine.unlink()
    raise EdgecnnError(f"onnx2tf could not convert this model (tried {', '.join(tried)}): {why}")


def _onnx2tf_once(onnx_path: Path, out: Path, keep_nhwc: list, timeout: int, extra: dict) -> str | None:
    """One onnx2tf run in a child process; None when it wrote the SavedModel, else why not (one line)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"}
    )
    args = json.dumps({"onnx": str(onnx_path), "out": str(out), "keep_nhwc": keep_nhwc, "extra": extra})
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, args], capture_output=True, text=True, timeout=timeout, cwd=str(onnx_path.parent), env=env)
    except subprocess.TimeoutExpired:
        return f"did not finish in {timeout} s"
    if proc.returncode == 0 and (out / "saved_model.pb").is_file():
        return None
    text = proc.stdout + proc.stderr
    lines = [ln for ln in text.splitlines() if "ERROR" in ln or "Error" in ln]
    why = lines[-1] if lines else (text.strip().splitlines() or ["no output"])[-1]
    return re.sub(r"\x1b\[[0-9;]*m", "", why).strip()[:240]


def import_onnx(path, input_shapes: dict | None = None, timeout: int = 900) -> OnnxImport:
    """An ONNX file into a SavedModel (in a temporary folder removed at exit)."""
    _need_packages()
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InputError(f"source not found: {path}")
    model = _load(path)
    work = Path(temp_dir(prefix="edgecnn-onnx-"))
    folded = fold_qdq(model)
    renamed = sanitize_node_names(model)
    shapes = _static_shapes(model, input_shapes or {})
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - onnxruntime's folding below infers what it can
        pass
    static = work / "static.onnx"
    onnx.save(model, str(static))
    float_onnx = work / f"{path.stem}.onnx"  # onnx2tf names its outputs after the file
    _fold_constants(static, float_onnx)
    static.unlink()
    inputs = {name: {"shape": shp, "layout": _layout(shp, model, name)} for name, shp in shapes.items()}
    keep = [n for n, i in inputs.items() if i["layout"] == "NHWC"]
    sm = work / "saved_model"
    _sample_images(work)
    fix = _onnx2tf(float_onnx, sm, keep, timeout)
    for junk in work.glob("*.tflite"):
        junk.unlink()
    m = _load(float_onnx)
    imp = OnnxImport(
        str(sm),
        str(float_onnx),
        inputs,
        [o.name for o in m.graph.output],
        folded,
        m.opset_import[0].version if m.opset_import else None,
        f"{m.producer_name} {m.producer_version}".strip(),
    )
    if folded:
        imp.notes.append(f"{folded} QuantizeLinear/DequantizeLinear nodes folded to float; the recipe quantizes again")
    if fix:
        imp.notes.append(f"onnx2tf failed as it was and converted {fix}")
    if renamed:
        imp.notes.append(f"{len(renamed)} node name(s) that TensorFlow rejects (such as {renamed[0]!r}) were renamed")
    return imp
