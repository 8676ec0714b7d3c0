"""The input side of :class:`edgecnn.device.runtime.Model`: from an OpenCV frame to the interpreter's input
tensor. Resizing and colour order (:meth:`ModelInput.prepare_pixels`), then normalising and, for a
quantized input, quantizing, in one table lookup where the values allow it, straight into the
tensor's memory (:meth:`ModelInput.set_pixels`, :meth:`ModelInput.load`), or into a tensor of the
caller's (:meth:`ModelInput.prepare`, :meth:`ModelInput.set_input`). Imports: numpy, OpenCV."""

from __future__ import annotations

import numpy as np

from edgecnn.core.errors import InputError

_INTEGER = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))  # the quantized tensor types


class ModelInput:
    """Mixed into :class:`~edgecnn.device.runtime.Model`, which sets ``interpreter``, ``inputs``,
    ``preprocess``, ``path``, ``_input_shape`` and ``_work``."""

    def reset_input_state(self) -> None:
        """Forget the buffers planned for this interpreter's input (a twin has its own interpreter)."""
        for name in ("_plan", "_input_view", "_qbufs"):
            self.__dict__.pop(name, None)
        self._work = {}

    def prepare(self, image, reuse: bool = False, with_transform: bool = False, out: np.ndarray | None = None, work: dict | None = None):
        """One image (OpenCV BGR/gray uint8) -> the input tensor (H, W, C) by the spec. ``reuse`` writes
        into one preallocated buffer (valid until the next call): what ``predict`` and the camera use;
        ``out`` (a buffer of the prepared input's shape and type) and ``work`` (a thread's own planning
        dict) are the same for a caller that keeps its own.

        Into a buffer, a quantized input (int8, uint8, int16) takes its values already quantized: one
        lookup per pixel through a table of what normalising and then quantizing makes of each uint8
        value, in the same float32 steps, so the same values as preparing a float tensor and
        :meth:`set_input` quantizing it (1 pass against 7; 23 against 55 us at 160x160x3). Without one,
        the tensor is float32 (or the raw pixels where the spec says so)."""
        if self.preprocess is None:
            raise InputError(f"{self.path} has no preprocessing metadata; pass preprocess=PreprocessSpec(...)")
        table = None
        if reuse or out is not None:
            table, buf, _ = self._prepared_plan()
            if reuse:
                out, work = buf, self._work
            elif table is not None and out.dtype != table.dtype:
                table = None  # a float buffer of the caller's: the float tensor
        return self.preprocess.apply(image, with_transform=with_transform, out=out, work=work, table=table)

    def prepare_pixels(self, image, out: np.ndarray | None = None, work: dict | None = None):
        """The first half of :meth:`prepare`: (uint8 pixels at the input size in the model's colour
        order, Transform), into ``out`` (from :meth:`pixel_buffer`) where given; :meth:`set_pixels`
        makes them the input. The camera's reader thread hands these on: 4x fewer bytes than the
        float tensor cross to the worker's core, and the worker writes the tensor in place."""
        if self.preprocess is None:
            raise InputError(f"{self.path} has no preprocessing metadata; pass preprocess=PreprocessSpec(...)")
        return self.preprocess.pixels(image, self._work if work is None else work, out)

    def pixel_buffer(self) -> np.ndarray:
        """A new uint8 buffer for :meth:`prepare_pixels`' ``out``."""
        spec = self.preprocess
        return np.empty((int(spec.height), int(spec.width), int(spec.channels)), np.uint8)

    def set_pixels(self, pixels: np.ndarray) -> None:
        """Normalise (and, for a quantized input, quantize) :meth:`prepare_pixels`' pixels straight into
        the interpreter's input tensor: the same values as ``set_input(prepare(image))`` with no tensor
        copied (``set_tensor`` copies 196 KB a frame for a 128x128 float input)."""
        spec = self.preprocess
        table, buf, in_place = self._prepared_plan()
        if pixels.dtype != np.uint8 or pixels.shape != buf.shape:
            raise InputError(f"set_pixels takes uint8 pixels of shape {buf.shape} (from prepare_pixels), got {pixels.dtype} {pixels.shape}")
        if not in_place:  # a per-image normalisation (whiten) into an integer input, or a shape to check
            self.set_input(spec.normalize_pixels(pixels))
            return
        view = self._input_tensor()[0]
        spec.normalize_pixels(pixels, view, table)
        del view  # no array may point into the interpreter when it runs (LiteRT refuses to invoke)

    def load(self, image):
        """One frame -> the input tensor, prepared in place (:meth:`prepare_pixels` then
        :meth:`set_pixels`, with this model's own buffers); returns the Transform."""
        pixels, transform = self.prepare_pixels(image)
        self.set_pixels(pixels)
        return transform

    def _input_tensor(self) -> np.ndarray:
        """A view of the interpreter's input tensor (batch axis included): drop it before invoking."""
        cached = self.__dict__.get("_input_view")
        if cached is None or cached[0] is not self.interpreter:
            cached = self._input_view = (self.interpreter, self.interpreter.tensor(self.inputs[0]["index"]))
        return cached[1]()

    def _prepared_plan(self):
        """(quantizing table or None, the reused input buffer, whether :meth:`set_pixels` can write the
        input tensor in place) for the current spec, made once per spec."""
        spec = self.preprocess
        plan = self.__dict__.get("_plan")
        if plan is None or plan[0] is not spec:
            table = self._quantizing_table(spec)
            dtype = table.dtype if table is not None else np.uint8 if spec.normalize == "pixels" else np.float32
            buf = np.empty((spec.height, spec.width, spec.channels), dtype)
            tensor = np.dtype(self.inputs[0]["dtype"])
            in_place = tuple(self._input_shape[1:]) == buf.shape and (
                table is not None or tensor == np.float32 or (tensor == np.uint8 and spec.normalize == "pixels")
            )
            plan = self._plan = (spec, table, buf, in_place)
        return plan[1:]

    def _quantizing_table(self, spec):
        """(1, 256, 1 or C) of the input's integer type: each uint8 value normalised by ``spec`` and
        quantized by :meth:`set_input`'s own steps; None for a float input or a per-image normalisation."""
        det = self.inputs[0]
        dtype = np.dtype(det["dtype"])
        if dtype not in _INTEGER:
            return None
        if tuple(self._input_shape[1:]) != (spec.height, spec.width, spec.channels):
            return None
        if spec.normalize == "pixels":  # raw pixels: as they are for uint8, set_input's shift by 128 for int8
            return (np.arange(256) - 128).astype(np.int8).reshape(1, 256, 1) if dtype == np.int8 else None
        values = spec.pixel_values()
        return None if values is None else self._quantize(values, 0).copy()

    def set_input(self, x: np.ndarray, index: int = 0) -> None:
        """Quantize a float tensor (batch 1) for the model's input type and hand it to the interpreter."""
        det = self.inputs[index]
        dtype = det["dtype"]
        x = np.asarray(x)
        if x.ndim == len(det["shape"]) - 1:
            x = x[None]
        if x.dtype == np.uint8 and dtype == np.int8:  # raw pixels into an int8 input: the usual -128 shift
            x = (x.astype(np.int16) - 128).astype(np.int8)
        elif dtype in _INTEGER and x.dtype not in _INTEGER:
            x = self._quantize(x, index)
        elif x.dtype != dtype:
            x = x.astype(dtype)
        self.interpreter.set_tensor(det["index"], x)

    def _quantize(self, x: np.ndarray, index: int) -> np.ndarray:
        """x / scale + zero_point, rounded and clipped, in preallocated buffers (no per-call allocations)."""
        cache = self.__dict__.setdefault("_qbufs", {})
        det = self.inputs[index]
        key = (index, x.shape)
        if key not in cache:
            scale, zero = det["quantization"]
            info = np.iinfo(det["dtype"])
            cache[key] = (np.empty(x.shape, np.float32), np.empty(x.shape, det["dtype"]), np.float32(1.0 / scale), np.float32(zero), info.min, info.max)
        work, out, inv, zero, lo, hi = cache[key]
        np.multiply(x, inv, out=work, casting="unsafe")
        np.add(work, zero, out=work)
        np.rint(work, out=work)
        np.clip(work, lo, hi, out=work)
        out[...] = work
        return out
