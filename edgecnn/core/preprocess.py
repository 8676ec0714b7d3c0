"""The one preprocessing spec: input size, colour order, resize mode, normalisation, labels.

The converter writes it into the ``.tflite`` metadata; the device runtime reads it back; calibration
and inference both call :meth:`PreprocessSpec.apply`, so nothing is configured twice.
Device-safe: numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edgecnn.core.errors import InputError

# Named normalisations: x = (pixel * scale - mean) / std per channel, or per-image whitening.
PRESETS = {
    "unit": {"normalize": "scale", "scale": 1 / 255.0, "mean": [0.0], "std": [1.0]},  # [0, 1]
    "symmetric": {"normalize": "scale", "scale": 1 / 127.5, "mean": [1.0], "std": [1.0]},  # [-1, 1]
    "imagenet": {"normalize": "scale", "scale": 1 / 255.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "raw": {"normalize": "scale", "scale": 1.0, "mean": [0.0], "std": [1.0]},  # 0..255 floats
    "whiten": {"normalize": "whiten"},  # FaceNet's prewhiten: zero mean, unit variance per image
}
COLORS = ("rgb", "bgr", "gray")
# scale: (p * scale - mean) / std; whiten: per image; none: float pixels; pixels: the uint8 pixels
# themselves (quantized inputs: the normalisation is folded into the input's quantization)
NORMALIZATIONS = ("scale", "whiten", "none", "pixels")
RESIZES = ("stretch", "letterbox", "crop")
ANCHORS = ("center", "top-left")  # where a letterboxed image sits (YOLOX and others pad right and bottom)
# area: anti-aliased (a bilinear step to twice the size, then an area average: see resize); linear: one
# bilinear step, what a hand-written loop does (cheaper; aliasing on large reductions)
INTERPOLATIONS = ("area", "linear")


@dataclass(frozen=True)
class Transform:
    """How a frame maps onto the model input: input = frame * scale + pad (per axis)."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    input_w: int
    input_h: int

    def to_frame(self, box_fraction):
        """(x1, y1, x2, y2) in input fractions -> pixels of the original frame."""
        x1, y1, x2, y2 = box_fraction
        return (
            (x1 * self.input_w - self.pad_x) / self.scale_x,
            (y1 * self.input_h - self.pad_y) / self.scale_y,
            (x2 * self.input_w - self.pad_x) / self.scale_x,
            (y2 * self.input_h - self.pad_y) / self.scale_y,
        )


@dataclass
class PreprocessSpec:
    height: int
    width: int
    channels: int = 3
    color: str = "rgb"
    resize: str = "stretch"
    normalize: str = "scale"
    scale: float = 1 / 255.0
    mean: list = field(default_factory=lambda: [0.0])
    std: list = field(default_factory=lambda: [1.0])
    labels: list | None = None
    anchor: str = "center"
    pad: int = 0  # the letterbox's fill, per pixel value (YOLOX: 114)
    interpolation: str = "area"

    def __post_init__(self):
        if self.color not in COLORS:
            raise InputError(f"colour order must be one of {', '.join(COLORS)}, got {self.color!r}")
        if self.resize not in RESIZES:
            raise InputError(f"resize must be one of {', '.join(RESIZES)}, got {self.resize!r}")
        if self.anchor not in ANCHORS:
            raise InputError(f"anchor must be one of {', '.join(ANCHORS)}, got {self.anchor!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if isinstance(self.pad, bool) or not isinstance(self.pad, (int, np.integer)) or not 0 <= int(self.pad) <= 255:
            raise InputError(f"pad must be a pixel value from 0 to 255, got {self.pad!r}")
        if self.normalize not in NORMALIZATIONS:
            raise InputError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {self.normalize!r}")
        if int(self.height) <= 0 or int(self.width) <= 0 or int(self.channels) not in (1, 3):
            raise InputError(f"bad input geometry {self.height}x{self.width}x{self.channels}")
        if self.channels == 1:
            self.color = "gray"
        if any(float(s) == 0 for s in self.std):
            raise InputError("std must not contain zeros")

    @classmethod
    def for_input(cls, height, width, channels=3, preset="unit", **kw) -> "PreprocessSpec":
        if preset not in PRESETS:
            raise InputError(f"unknown normalisation {preset!r}; choose one of {', '.join(PRESETS)}")
        return cls(int(height), int(width), int(channels), **{**PRESETS[preset], **kw})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    # ------------------------------------------------------------------ geometry
    def fit(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        """Resize ``image`` to the input size by the spec's mode; returns the pixels and the mapping."""
        h, w = image.shape[:2]
        H, W = int(self.height), int(self.width)
        if self.resize == "stretch":
            return resize(image, W, H, self.interpolation), self._placement(w, h)[4]
        if self.resize == "letterbox":
            nw, nh, px, py, transform = self._placement(w, h)
            resized = resize(image, nw, nh, self.interpolation)
            out = np.full((H, W) + resized.shape[2:], self.pad, image.dtype)
            out[py : py + nh, px : px + nw] = resized.reshape((nh, nw) + resized.shape[2:])
            return out, transform
        # crop: scale the short side to fit, then take the centre
        s = max(W / w, H / h)
        nw, nh = max(W, round(w * s)), max(H, round(h * s))
        resized = resize(image, nw, nh, self.interpolation)
        x0, y0 = (nw - W) // 2, (nh - H) // 2
        return resized[y0 : y0 + H, x0 : x0 + W], Transform(s, s, -float(x0), -float(y0), W, H)

    # ------------------------------------------------------------------ pixels
    def apply(self, image: np.ndarray, with_transform: bool = False, out: np.ndarray | None = None, work: dict | None = None, table: np.ndarray | None = None):
        """An OpenCV image (BGR or gray, uint8) -> the model input (H, W, C): float32, or the uint8
        pixels themselves where ``normalize`` is ``pixels`` (quantized inputs of third-party models).

        The order is what a careful hand writes: resize the uint8 frame first, then convert colour
        and normalise the small image (into ``out`` when given: no per-frame allocation). Calibration,
        ``Model.predict`` and the camera loop all come through here. ``work``: a dict that one thread
        keeps for its frames (a :class:`~edgecnn.device.runtime.Model` keeps one): the resize steps, the
        letterbox and the colour conversion then write into buffers planned once per frame size, the
        same pixels with no allocation and less Python per frame. ``table``: a (1, 256, 1 or C) lookup
        table that maps each uint8 pixel to the model's value in one pass, into ``out`` (given with it):
        how a model with a quantized input gets its normalised and quantized pixels at once (see
        :meth:`~edgecnn.device.runtime.Model.prepare`).
        """
        small, transform = self.pixels(image, work)
        x = self.normalize_pixels(small, out, table)
        return (x, transform) if with_transform else x

    def pixels(self, image: np.ndarray, work: dict | None = None, out: np.ndarray | None = None):
        """The first half of :meth:`apply`: the frame resized (by the spec's mode) and in the model's
        colour order, still uint8 (H, W, C) for a uint8 frame; returns (pixels, Transform). ``out``: a
        uint8 buffer of that shape to hold them (a ring of them lets another thread normalise them
        later, 4x smaller than the float tensor); without it the pixels may be ``work``'s own buffer,
        valid until the next frame."""
        import cv2

        img = np.asarray(image)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
            raise InputError(f"expected an image of shape (H, W[, 1|3|4]), got {tuple(np.shape(image))}")
        if img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        if not img.flags.c_contiguous:
            img = np.ascontiguousarray(img)
        if work is not None and img.shape[2] == 3 == self.channels and img.dtype == np.uint8 and self.resize != "crop":
            small, transform = self._planned(img, work, out)
        else:
            small, transform = self.fit(img)
            if small.ndim == 2:
                small = small[:, :, None]
            if self.channels == 1 and small.shape[2] == 3:
                small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)[:, :, None]
            elif self.channels == 3 and small.shape[2] == 1:
                small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
            elif self.channels == 3 and self.color == "rgb":
                small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        if out is not None and small is not out:
            np.copyto(out, small.reshape(out.shape))
            small = out
        return small, transform

    def _planned(self, img: np.ndarray, work: dict, out: np.ndarray | None = None):
        """:meth:`fit` and the colour order for a 3-channel uint8 frame, into ``work``'s buffers: the
        geometry, the steps of :func:`resize`, a zero-padded canvas (only the image part is ever
        written, so the padding stays zero) and the Transform are made once per frame size. The colour
        conversion writes into ``out`` where given."""
        import cv2

        plan = work.get(img.shape)
        if plan is None:
            plan = work[img.shape] = self._plan(img.shape[1], img.shape[0])
        steps, canvas, rgb, transform = plan
        src = img
        for size, interpolation, dst in steps:
            cv2.resize(src, size, dst=dst, interpolation=interpolation)
            src = dst
        if rgb is None:
            return canvas, transform
        dst = out if out is not None and out.shape == rgb.shape and out.dtype == np.uint8 else rgb
        y = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB, dst=dst)
        return (dst if y is dst else y), transform

    def _placement(self, w: int, h: int):
        """Where a w x h frame goes in the input (stretch or letterbox): (nw, nh, px, py, Transform)."""
        H, W = int(self.height), int(self.width)
        if self.resize == "stretch":
            return W, H, 0, 0, Transform(W / w, H / h, 0.0, 0.0, W, H)
        s = min(W / w, H / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        px, py = ((W - nw) // 2, (H - nh) // 2) if self.anchor == "center" else (0, 0)
        return nw, nh, px, py, Transform(s, s, float(px), float(py), W, H)

    def _plan(self, w: int, h: int):
        import cv2

        nw, nh, px, py, transform = self._placement(w, h)
        canvas = np.full((int(self.height), int(self.width), 3), self.pad, np.uint8)
        region = canvas[py : py + nh, px : px + nw]
        steps = resize_steps(w, h, nw, nh, self.interpolation) or [((nw, nh), cv2.INTER_NEAREST)]  # the same size: a copy into the canvas
        # each step into its own buffer, the last into the canvas
        bufs = [np.empty((sh, sw, 3), np.uint8) for (sw, sh), _ in steps[:-1]] + [region]
        rgb = np.empty_like(canvas) if self.color == "rgb" else None
        return [(size, interpolation, dst) for (size, interpolation), dst in zip(steps, bufs)], canvas, rgb, transform

    def normalize_pixels(self, small: np.ndarray, out: np.ndarray | None = None, table: np.ndarray | None = None) -> np.ndarray:
        """Input-sized uint8 pixels -> the model's values: ``(p * scale - mean) / std`` as one multiply-add
        (or ``table``'s values, into ``out``)."""
        if table is not None:
            import cv2

            y = cv2.LUT(small, table, dst=out)
            if y is not out:  # OpenCV could not write into out as it is
                np.copyto(out, y.reshape(out.shape))
            return out
        if self.normalize == "pixels":
            if out is None:
                return np.array(small, copy=True)
            np.copyto(out, small)
            return out
        x = out if out is not None else np.empty(small.shape, np.float32)
        if self.normalize == "whiten":
            np.copyto(x, small, casting="unsafe")
            mean, std = x.mean(), x.std()
            x -= mean
            x /= max(std, 1.0 / np.sqrt(x.size))
        elif self.normalize == "scale":
            a, b = self.affine()
            per_channel = max(a.size, b.size)
            if small.dtype == np.uint8 and small.ndim == 3 and per_channel in (1, small.shape[2]) and small.shape[2] <= 4:
                # a table of the same float32 values, one pass: per channel (ImageNet's mean and std),
                # numpy broadcasts a 3-vector over every pixel at 0.15-0.19 ms for 128x128 where the
                # table takes 0.04 ms; one value for all, in the camera loop (BlazeFace's 128x128x3,
                # into its input tensor) 0.056 against numpy's multiply and add at 0.078 ms
                import cv2

                y = cv2.LUT(small, self._table(), dst=x)
                if y is not x:  # OpenCV could not write into x (a view it does not take as is)
                    np.copyto(x, y)
            else:
                np.multiply(small, a, out=x, casting="unsafe")
                x += b
        else:
            np.copyto(x, small, casting="unsafe")
        return x

    def affine(self):
        """(a, b), float32 per channel: what normalising does to a pixel value p, ``p * a + b``."""
        cached = self.__dict__.get("_ab")
        if cached is None:
            std = np.asarray(self.std, np.float32)
            a = np.float32(self.scale) / std
            b = -np.asarray(self.mean, np.float32) / std
            cached = self.__dict__["_ab"] = (a.astype(np.float32), b.astype(np.float32))
        return cached

    def _table(self) -> np.ndarray:
        """(1, 256, C) float32: every uint8 value through :meth:`affine`, in the same float32 steps (one
        rounding after the multiply, one after the add), so the table gives the same bits."""
        cached = self.__dict__.get("_lut")
        if cached is None:
            a, b = self.affine()
            p = np.arange(256, dtype=np.float32)[:, None]
            cached = self.__dict__["_lut"] = (p * a + b)[None]  # float32 throughout
        return cached

    def pixel_values(self) -> np.ndarray | None:
        """(1, 256, 1 or C) float32: what :meth:`normalize_pixels` makes of each uint8 value, the same
        bits; None where it depends on the whole image (whiten) or the pixels pass as they are."""
        if self.normalize == "scale":
            return self._table()
        if self.normalize == "none":
            return np.arange(256, dtype=np.float32).reshape(1, 256, 1)
        return None

    def apply_batch(self, images) -> np.ndarray:
        return np.stack([self.apply(im) for im in images]).astype(np.float32)


def resize(image: np.ndarray, w: int, h: int, interpolation: str = "area") -> np.ndarray:
    """Resize a frame to the model input at a fraction of a full-frame area average's cost: a large
    reduction (4x or more) first takes one bilinear step to twice the target, then area-averages
    down to it; smaller changes are one step. One bilinear step alone (what hand-written loops do)
    aliases fine detail into false detections; a full-frame area average is several times dearer.
    ``interpolation="linear"``: one bilinear step, as a hand-written loop does (benchmarks/resize.py
    measures what each costs and buys on real models)."""
    import cv2

    for size, method in resize_steps(image.shape[1], image.shape[0], w, h, interpolation):
        image = cv2.resize(image, size, interpolation=method)
    return image


def resize_steps(iw: int, ih: int, w: int, h: int, interpolation: str = "area") -> list:
    """The steps of :func:`resize` from iw x ih to w x h: [((width, height), interpolation), ...]."""
    import cv2

    if (iw, ih) == (w, h):
        return []
    if interpolation == "linear":
        return [((w, h), cv2.INTER_LINEAR)]
    if iw >= 4 * w and ih >= 4 * h:
        return [((2 * w, 2 * h), _bilinear_step(iw, ih, 2 * w, 2 * h)), ((w, h), cv2.INTER_AREA)]
    return [((w, h), cv2.INTER_AREA if (ih > h or iw > w) else cv2.INTER_LINEAR)]


def _bilinear_step(iw: int, ih: int, w: int, h: int) -> int:
    """INTER_LINEAR, or where both ratios are odd whole numbers (1280x720 to 256x144: 5) the same
    pixels for less: every bilinear sample then falls on a pixel centre (weights 1 and 0), which
    INTER_NEAREST_EXACT takes without reading the neighbour (0.12 against 0.19 ms a 720p frame)."""
    import cv2

    odd = all(a % b == 0 and (a // b) % 2 == 1 for a, b in ((iw, w), (ih, h)))
    return getattr(cv2, "INTER_NEAREST_EXACT", cv2.INTER_LINEAR) if odd else cv2.INTER_LINEAR
