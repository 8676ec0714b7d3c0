"""The TensorFlow-free device runtime: load any ``.tflite``, run it on the target's delegate.

    >>> from edgecnn.device.runtime import Model
    >>> m = Model("mobilenet_v2_int8.tflite", target="rpi4")
    >>> probs = m.predict(cv2.imread("cat.jpg"))

``predict`` takes one image of any size and resizes, orders colours and normalises it by the
preprocessing spec that ``edgecnn convert`` wrote into the file (or one the caller passes for files
edgecnn did not make), quantizes integer inputs, runs the interpreter and returns float outputs.
Several images go to ``predict_batch``, a prepared tensor to ``run``: nothing is guessed from a shape.
Imports: numpy, OpenCV, LiteRT.
"""

from __future__ import annotations

import copy
import os
import time

import numpy as np

from edgecnn.core import tflite_metadata
from edgecnn.core._quiet import quiet_stderr
from edgecnn.core.backend import get_backend
from edgecnn.core.errors import InputError, first_line, note
from edgecnn.core.preprocess import PreprocessSpec
from edgecnn.device.loader import check_model
from edgecnn.device.model_input import _INTEGER, ModelInput
from edgecnn.targets.delegates import choose_delegates
from edgecnn.targets.profile import load_target


class Model(ModelInput):
    """A loaded ``.tflite`` model on one target (its input side, from a frame to the input tensor, in
    :class:`~edgecnn.device.model_input.ModelInput`).

    Args:
        path: the model file.
        target: a target name or profile (default ``cpu``): picks delegate and thread count.
        threads: overrides the profile's thread count.
        preprocess: a :class:`PreprocessSpec` (or dict) for files without edgecnn metadata.
        strict: an absent delegate is an error instead of a CPU fallback.
        isolate: test-load a file not seen before in a child process first (default on; see
            :mod:`edgecnn.device.loader`).
    """

    def __init__(self, path, target=None, threads: int | None = None, preprocess=None, strict: bool = False, warn=None, isolate: bool | None = None):
        self.path = str(path)
        t0 = time.perf_counter()
        self.file = check_model(path, isolate)  # validated, and a first load of an unseen file survived in a child
        self.metadata = self.file.edgecnn or {}
        self.target = load_target(target)
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise InputError(f"threads must be a positive integer, got {threads!r}")
        self.threads = threads or self.target.resolved_threads()
        self.backend = get_backend()
        self.delegate = choose_delegates(self.target, strict=strict, warn=warn, model_path=self.path)
        self._compiled = self.delegate.compiled
        before = native_threads() if self.threads > 1 else None
        try:
            with quiet_stderr():
                self.interpreter = self.backend.Interpreter(
                    model_path=self.path, experimental_delegates=self.delegate.delegates or None, num_threads=self.threads, **self._resolver()
                )
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"the {self.backend.name} runtime cannot load {self.path}: {first_line(exc)}") from None
        self.pool_threads = native_threads() - before if before is not None else set()
        self.load_seconds = time.perf_counter() - t0
        self.inputs = self.interpreter.get_input_details()
        self.outputs, self.output_names = source_order(self.interpreter.get_output_details(), self.file, self.metadata)
        self._input_shape = tuple(int(d) for d in self.inputs[0]["shape"])
        # per output: (tensor index, dequantization (scale, zero) or None); read on every run
        self._out_plan = [(d["index"], _dequantization(d)) for d in self.outputs]
        if self._compiled is not None:  # WebGPU: buffers made once, outputs read back after each run
            self._bufs = (self._compiled.create_input_buffers(0), self._compiled.create_output_buffers(0))
            self._gpu_out: dict = {}
        self.standard = None  # the standard TFLITE_METADATA, for files edgecnn did not make
        self.preprocess_note = None  # what was assumed for a file with no preprocessing metadata at all
        if preprocess is None and self.metadata.get("preprocess"):
            preprocess = self.metadata["preprocess"]
        if isinstance(preprocess, dict):
            preprocess = PreprocessSpec.from_dict(preprocess)
        if preprocess is None:
            self.standard = tflite_metadata.parse(self.file.metadata.get(tflite_metadata.NAME), self.path)
            preprocess, self.preprocess_note = spec_for_input(self.inputs[0], self.standard, self.path)
            if self.preprocess_note:
                (warn or note)(self.preprocess_note)
        self.preprocess: PreprocessSpec | None = preprocess
        self.labels = self.metadata.get("labels") or (preprocess.labels if preprocess else None) or (self.standard.labels if self.standard else None)
        self._work: dict = {}  # preprocessing's buffers, planned once per frame size (this model's thread)
        self.invoke_cpu_seconds = 0.0

    def _resolver(self) -> dict:
        """A target whose delegate is ``none`` runs the plain builtin kernels: without this, LiteRT applies
        XNNPACK by default and "none" would mean XNNPACK under another name."""
        if self.delegate.active != "cpu":
            return {}
        import importlib

        kind = getattr(importlib.import_module(self.backend.Interpreter.__module__), "OpResolverType", None)
        return {"experimental_op_resolver_type": kind.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if kind is not None else {}

    # ------------------------------------------------------------------ info
    @property
    def input_shape(self) -> tuple:
        return self._input_shape

    @property
    def input_dtype(self):
        return self.inputs[0]["dtype"]

    def describe(self) -> dict:
        return {
            "path": self.path,
            "runtime": f"{self.backend.name} {self.backend.version}",
            "target": self.target.name,
            "delegate": self.delegate.active,
            "threads": self.threads,
            "inputs": [_tensor_desc(d) for d in self.inputs],
            "outputs": [{**_tensor_desc(d), "name": n} for d, n in zip(self.outputs, self.output_names)],
            "preprocess": self.preprocess.to_dict() if self.preprocess else None,
            "made_by_edgecnn": bool(self.metadata),
        }

    @property
    def can_twin(self) -> bool:
        """A second interpreter can run beside this one: the CPU (a GPU or Edge TPU delegate is one device)."""
        return not self.delegate.delegates and self._compiled is None

    def twin(self, threads: int | None = None) -> Model:
        """Another interpreter of the same file and settings, with its own tensors and ``threads``: runs
        in another thread beside this one (the camera's frame-parallel workers). CPU only."""
        if not self.can_twin:
            raise InputError(f"{self.path} runs on {self.delegate.active}: one interpreter per device")
        twin = copy.copy(self)
        twin.threads = threads or self.threads
        before = native_threads() if twin.threads > 1 else None
        with quiet_stderr():
            twin.interpreter = self.backend.Interpreter(model_path=self.path, num_threads=twin.threads, **self._resolver())
            twin.interpreter.allocate_tensors()
        twin.pool_threads = native_threads() - before if before is not None else set()
        twin.reset_input_state()  # its own input buffers
        twin.invoke_cpu_seconds = 0.0
        return twin

    def pool_cpu_seconds(self) -> float:
        """CPU seconds so far of the threads this interpreter started for itself (XNNPACK's pool with 2+
        threads): the threads that appeared while it loaded. They run part of every invoke off the
        calling thread's clock, where ``invoke_cpu_seconds`` cannot see them. Linux only (0 elsewhere,
        and with one thread)."""
        return threads_cpu_seconds(self.pool_threads)

    # ------------------------------------------------------------------ running
    def invoke(self) -> None:
        if self._compiled is None:
            c0 = time.thread_time()
            self.interpreter.invoke()
            self.invoke_cpu_seconds = time.thread_time() - c0  # what the camera loop subtracts to report its own overhead
            return
        # WebGPU path: the interpreter holds the prepared input; the compiled model runs it
        ins, outs = self._bufs
        for buf, det in zip(ins, self.inputs):
            buf.write(self.interpreter.get_tensor(det["index"]))
        self._compiled.run_by_index(0, ins, outs)
        for buf, det in zip(outs, self.outputs):
            self._gpu_out[det["index"]] = buf.read(int(np.prod(det["shape"])), det["dtype"]).reshape(det["shape"])

    def get_output(self, i: int) -> np.ndarray:
        """Output ``i`` of the last run as float32 (dequantized), without the batch axis: a detector that
        needs its boxes only where a score passes asks for the scores first."""
        index, dq = self._out_plan[i]
        if self._compiled is not None:
            y = self._gpu_out[index]
        else:
            y = self.interpreter.get_tensor(index)
            if dq is None and y.dtype == np.float32:
                return y[0]  # get_tensor's array is already a copy: float32 needs no second one
        if dq is not None:  # a new float32 array: no second copy either
            y = (y.astype(np.float32) - dq[1]) * dq[0] if dq[0] else y.astype(np.float32)
            if self._compiled is None:
                return y[0]
        return np.array(y[0], dtype=np.float32, copy=True)

    def get_outputs(self) -> list[np.ndarray]:
        return [self.get_output(i) for i in range(len(self._out_plan))]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one *prepared* input tensor (the input's shape, with or without the batch axis; float, or
        already quantized); returns the float outputs without the batch axis. For an image, use
        :meth:`predict`."""
        x = np.asarray(x)
        if tuple(x.shape) not in (self._input_shape, self._input_shape[1:]):
            raise InputError(
                f"run takes a prepared input of shape {self._input_shape[1:]} (or {self._input_shape}), got {x.shape}; an image goes to predict(image)"
            )
        self.set_input(x)
        self.invoke()
        return self.get_outputs()

    def predict(self, image):
        """One image -> its float outputs (an array, or a list of arrays for a multi-output model).

        ``image`` is one OpenCV image of any size: uint8 H x W (grey), H x W x 1, H x W x 3 (BGR) or
        H x W x 4 (BGRA). It is always resized, colour-ordered and normalised by the model's spec, also
        when it is already the input size: nothing is guessed from a shape. A prepared tensor goes to
        :meth:`run`; several images to :meth:`predict_batch`.
        """
        image = _one_image(image, "predict")
        if self._input_shape[0] > 1:  # a model with a fixed batch of several: one image fills one slot
            outs = self.predict_batch([image])
            return outs[0] if len(self.outputs) == 1 else [o[0] for o in outs]
        self.load(image)  # prepared straight into the input tensor
        self.invoke()
        outs = self.get_outputs()
        return outs[0] if len(self.outputs) == 1 else outs

    def predict_batch(self, images):
        """Several images (a list of what :meth:`predict` takes, or an N x H x W x C uint8 array) -> the
        outputs stacked along a new first axis. A model with a fixed batch of B runs B images at a time."""
        if isinstance(images, np.ndarray):
            if images.ndim != 4:
                raise InputError(
                    f"predict_batch takes a list of images or an N x H x W x C array, got an array of shape {images.shape} "
                    "(one image goes to predict; N grey images: pass list(array))"
                )
            images = list(images)
        elif isinstance(images, (str, bytes)) or not hasattr(images, "__iter__"):
            raise InputError(f"predict_batch takes a list of images, got {type(images).__name__}")
        batch = [_one_image(im, f"predict_batch item {i}") for i, im in enumerate(images)]
        if not batch:
            raise InputError("predict_batch needs at least one image")
        if self._input_shape[0] > 1:
            return self._run_batched(batch)
        n_out = len(self.outputs)
        results = []
        for item in batch:
            self.load(item)
            self.invoke()
            results.append(self.get_outputs())
        stacked = [np.stack([r[k] for r in results]) for k in range(n_out)]
        return stacked[0] if n_out == 1 else stacked

    def _run_batched(self, batch: list) -> np.ndarray | list:
        """A fixed-batch model: B prepared images a run (the last run padded with zeros), every row of
        every output kept."""
        size = self._input_shape[0]
        outs: list[list] = [[] for _ in self.outputs]
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            x = np.zeros(self._input_shape, np.float32)
            for j, im in enumerate(chunk):
                x[j] = self.prepare(im)
            self.set_input(x)
            self.invoke()
            for k, (index, dq) in enumerate(self._out_plan):
                y = self.interpreter.get_tensor(index)[: len(chunk)]
                outs[k].append((y.astype(np.float32) - dq[1]) * dq[0] if dq is not None and dq[0] else y.astype(np.float32))
        stacked = [np.concatenate(o) for o in outs]
        return stacked[0] if len(stacked) == 1 else stacked

    def classify(self, image, top_k: int = 5) -> list[tuple[str, float]]:
        """Top-k (label, score) of a classifier, labels from the model's metadata (its packed label
        file for third-party models), else the class index."""
        scores = np.asarray(self.predict(image)).reshape(-1)
        order = np.argsort(-scores)[:top_k]
        names = self.labels or []
        return [(names[i] if i < len(names) else str(int(i)), float(scores[i])) for i in order]


def source_order(details: list, info, metadata: dict) -> tuple[list, list]:
    """The outputs in the order, and with the names, the model's source gave them: a converter may
    reorder a graph's outputs, but the file's signature keeps the source's order and names (and
    ``edgecnn convert`` writes an ONNX source's own names beside them). Without a signature: the
    file's order and tensor names."""
    by_tensor = {d["index"]: d for d in details}
    signature = info.signature_outputs
    declared = [o for o in (metadata.get("outputs") or []) if isinstance(o, dict) and o.get("signature") in signature]
    if declared and len(declared) == len(details) and {signature[o["signature"]] for o in declared} == set(by_tensor):
        return [by_tensor[signature[o["signature"]]] for o in declared], [str(o.get("name") or o["signature"]) for o in declared]
    if signature and len(signature) == len(details) and set(signature.values()) == set(by_tensor):
        return [by_tensor[t] for t in signature.values()], list(signature)
    return list(details), [d["name"] for d in details]


def _one_image(image, where: str) -> np.ndarray:
    """``image`` if it is one 8-bit image (H x W, or H x W x 1, 3 or 4), else one clear error."""
    if not isinstance(image, np.ndarray):
        if isinstance(image, (list, tuple)):
            raise InputError(f"{where} takes one image (a uint8 array); several images go to predict_batch")
        raise InputError(f"{where} takes one image (a uint8 numpy array, e.g. from cv2.imread), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"{where} takes an 8-bit image (uint8, as cv2.imread gives), got {image.dtype}; a prepared input tensor goes to run(x)")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)):
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise InputError(f"{where}: the image is empty ({image.shape})")
        return image
    raise InputError(
        f"{where} takes one image of shape H x W or H x W x 1/3/4, got {image.shape}" + ("; a batch goes to predict_batch" if image.ndim == 4 else "")
    )


def _dequantization(detail: dict):
    """(scale as float32, zero point) of an integer output, else None (float outputs pass as they are)."""
    if np.dtype(detail["dtype"]) not in _INTEGER:
        return None
    scale, zero = detail["quantization"]
    return np.float32(scale), zero


def spec_for_input(detail: dict, standard, path: str):
    """The preprocessing of a file edgecnn did not make, read the way the TFLite Task Library reads it:
    quantized (uint8/int8) inputs take the raw pixels, float inputs the declared NormalizationOptions
    (or the Stats range). Returns (spec or None, a one-line note where nothing was declared)."""
    shape = [int(d) for d in detail["shape"]]
    if len(shape) != 4 or shape[-1] not in (1, 3):
        return None, None
    h, w, c = shape[1:]
    tm = standard.input if standard else None
    color = (tm.color if tm and tm.color else "rgb") if c == 3 else "gray"
    labels = standard.labels if standard else None
    quantized = np.dtype(detail["dtype"]) in (np.dtype(np.uint8), np.dtype(np.int8))
    if quantized:
        spec, basis = PreprocessSpec(h, w, c, color=color, normalize="pixels", labels=labels), "raw uint8 pixels (quantized input)"
    elif tm and tm.mean and tm.std:
        spec = PreprocessSpec(h, w, c, color=color, scale=1.0, mean=list(tm.mean), std=list(tm.std), labels=labels)
        basis = f"(pixel - {tm.mean}) / {tm.std}"
    elif tm and tm.min and tm.max:
        lo, hi = float(tm.min[0]), float(tm.max[0])
        spec = PreprocessSpec(h, w, c, color=color, scale=(hi - lo) / 255.0, mean=[-lo], std=[1.0], labels=labels)
        basis = f"pixels mapped to [{lo:g}, {hi:g}]"
    else:
        spec, basis = PreprocessSpec.for_input(h, w, c, "unit", color=color, labels=labels), "pixels scaled to [0, 1]"
    note = (
        None
        if standard
        else (
            f"{path} carries no preprocessing metadata: assuming {color.upper()}, stretched to {w}x{h}, "
            f"{basis}; pass a preprocessing spec if the model expects otherwise"
        )
    )
    return spec, note


def _tensor_desc(d: dict) -> dict:
    scale, zero = d.get("quantization", (0.0, 0))
    return {"name": d["name"], "shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name, "scale": float(scale), "zero_point": int(zero)}


def load(path, **kw) -> Model:
    return Model(path, **kw)


def native_threads() -> set[int]:
    """This process's threads (Linux: /proc/self/task; empty elsewhere): the ones a new interpreter adds
    are its own pool."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except (OSError, ValueError):
        return set()


def threads_cpu_seconds(tids) -> float:
    """CPU seconds so far of these threads of this process, in nanoseconds from the scheduler (a thread
    that has ended counts 0)."""
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


__all__ = ["Model", "load"]
