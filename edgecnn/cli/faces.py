"""Face verification commands: ``enroll``, ``gallery``, ``verify`` (and ``--calibrate``), ``identify``
and ``bundle``. The embedder is the one given, the bundle's, or (on a workstation) FaceNet converted
once and cached."""

from __future__ import annotations

from edgecnn.cli._output import console, fraction, no_extra, nonneg_float, print_json
from edgecnn.core.errors import InputError
from edgecnn.core.files import check_clashes, write_json


def add_parser(sub) -> None:
    def face_opts(sp, gallery=True):  # noqa: E306
        sp.add_argument("--embedder", help="embedding .tflite (default: FaceNet converted for the target, cached)")
        sp.add_argument("--bundle", help="use the embedder (and gallery) of a bundle folder")
        sp.add_argument("--target", help="target profile (default cpu)")
        sp.add_argument("--strict", action="store_true", help="several faces in an image is an error, not 'the largest'")
        if gallery:
            sp.add_argument("--gallery", help="gallery file (default in the user data folder)")
        sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("enroll", help="add a person's face(s) to the gallery")
    sp.add_argument("name")
    sp.add_argument("images", nargs="+")
    sp.add_argument("--largest", action="store_true", help="a photo with several faces enrols the largest (default: an error)")
    sp.add_argument("--keep-images", action="store_true", help="also store the aligned face crops")
    sp.add_argument("--replace", action="store_true", help="replace this person's earlier embeddings")
    face_opts(sp)

    sp = sub.add_parser("gallery", help="list, remove or export the enrolled identities")
    sp.add_argument("action", choices=["list", "remove", "export", "import"])
    sp.add_argument("name", nargs="?", help="NAME for remove, FILE for export and import")
    sp.add_argument("--gallery")
    sp.add_argument("--bundle")
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("verify", help="are two face photos the same person? (or --calibrate a threshold)")
    sp.add_argument("images", nargs="*")
    sp.add_argument("--threshold", type=nonneg_float, help="distance threshold (default: the embedder's)")
    sp.add_argument("--calibrate", metavar="DIR", help="choose a threshold from a folder of identity subfolders")
    sp.add_argument("--far", type=fraction, help="with --calibrate: the largest threshold with false-accept rate <= FAR (default: equal error rate)")
    face_opts(sp)

    sp = sub.add_parser("identify", help="who is in this photo? (gallery match or null)")
    sp.add_argument("image")
    sp.add_argument("--threshold", type=nonneg_float)
    face_opts(sp)

    sp = sub.add_parser("bundle", help="gather what a device needs (detector, embedder, gallery) for a target")
    sp.add_argument("--target", required=True, help="cpu | rpi4 | rpi5 | android-gpu | coral")
    sp.add_argument("--output", required=True, help="the bundle folder to write")
    sp.add_argument("--gallery", help="gallery to include (default: the user's, if any)")
    sp.add_argument("--embedder", help="a ready embedder .tflite instead of converting FaceNet")
    sp.add_argument("--no-embedder", action="store_true", help="detectors only")
    sp.add_argument("--enroll", action="append", metavar="NAME=IMG[,IMG…]", help="enrol a person with the bundle's own embedder into its gallery (repeatable)")
    sp.add_argument("--no-gallery", action="store_true", help="leave the gallery out (enrol on the device with --bundle)")
    sp.add_argument("--with-style", action="store_true", help="carry the 26-style network too (camera --style N --bundle DIR)")
    sp.add_argument("--force", action="store_true", help="replace the bundle already in --output (only the files its manifest lists)")
    sp.add_argument("--json", action="store_true")
    for name, fn in (("enroll", run_enroll), ("gallery", run_gallery), ("verify", run_verify), ("identify", run_identify), ("bundle", run_bundle)):
        sub.choices[name].set_defaults(run=fn)


def _verifier(args):
    from edgecnn.device.faces import open_verifier

    embedder = getattr(args, "embedder", None)
    bundle = getattr(args, "bundle", None)
    if not embedder and not bundle:
        from edgecnn.workstation.facenet import default_embedder

        embedder = default_embedder(target=getattr(args, "target", None), progress=not getattr(args, "json", False))
    return open_verifier(embedder, bundle, getattr(args, "target", None), strict=getattr(args, "strict", False))


def run_enroll(args, extra) -> int:
    from edgecnn.core.paths import default_gallery_path
    from edgecnn.device.bundle import gallery_path
    from edgecnn.device.faces import aligned_crop_jpeg, read_image
    from edgecnn.device.gallery import Gallery, check_name

    no_extra(extra)
    args.name = check_name(args.name)  # before any work: a name is data, never a terminal command
    target_gallery = gallery_path(args.gallery, args.bundle, create=True)
    check_clashes({"--gallery": target_gallery or default_gallery_path()}, {**{f"image {p}": p for p in args.images}, "--embedder": args.embedder})
    images = [read_image(p) for p in args.images]  # every file checked before anything is written
    args.strict = not args.largest  # several faces in an enrolment photo: an error unless --largest
    v = _verifier(args)
    embeddings = [v.embed(img, str(path)) for path, img in zip(args.images, images)]
    crops = [aligned_crop_jpeg(img, e) for img, e in zip(images, embeddings)] if args.keep_images else None
    with Gallery(target_gallery) as g:
        n = g.enroll(args.name, [e.vector for e in embeddings], v.embedder.identity, sources=[str(p) for p in args.images], images=crops, replace=args.replace)
    result = {"name": args.name, "enrolled": n, "gallery": str(g.path), "embedder": v.embedder.identity}
    print_json(result) if args.json else console().print(f"enrolled {args.name}: {n} face(s) into {g.path}", markup=False, highlight=False)
    return 0


def run_gallery(args, extra) -> int:
    from edgecnn.device.bundle import gallery_path
    from edgecnn.device.gallery import Gallery

    no_extra(extra)
    if args.action == "import":
        return _import(args)
    with Gallery(gallery_path(args.gallery, args.bundle), create=False, readonly=args.action in ("list", "export")) as g:
        return _gallery_action(args, g)


def _gallery_action(args, g) -> int:
    from edgecnn.device.gallery import shown

    if args.action == "list":
        rows = g.list()
        if args.json:
            print_json({"gallery": str(g.path), "embedder": g.meta("embedder"), "threshold": g.meta("threshold"), "identities": rows})
        else:
            con = console()
            con.print(f"{g.path} · embedder {g.meta('embedder')} · {len(rows)} identities")
            for r in rows:
                con.print(f"  {shown(r['name'])}: {r['embeddings']} embedding(s), enrolled {r['enrolled']}", markup=False, highlight=False)
        return 0
    if args.action == "remove":
        if not args.name:
            raise InputError("gallery remove needs a NAME")
        g.remove(args.name)
        print_json({"removed": args.name}) if args.json else console().print(f"removed {shown(args.name)}", markup=False, highlight=False)
        return 0
    if args.name:
        check_clashes({"export FILE": args.name}, {"--gallery": str(g.path)})
    data = g.export()
    if args.name:
        write_json(args.name, data)
    else:
        print_json(data)
    return 0


def _import(args) -> int:
    import json
    from pathlib import Path

    from edgecnn.device.bundle import gallery_path
    from edgecnn.device.gallery import Gallery

    if not args.name:
        raise InputError("gallery import needs the FILE that gallery export wrote")
    src = Path(args.name)
    if not src.is_file():
        raise InputError(f"gallery import: file not found: {src}")
    target = gallery_path(args.gallery, args.bundle, create=True)
    check_clashes({"--gallery": target}, {"FILE": str(src)})
    try:
        data = json.loads(src.read_text())
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"gallery import: {src} is not JSON from edgecnn gallery export") from None
    with Gallery(target) as g:
        n = g.import_export(data)
    print_json({"imported": n, "gallery": str(g.path)}) if args.json else console().print(f"imported {n} embedding(s) into {g.path}")
    return 0


def run_verify(args, extra) -> int:
    from edgecnn.device.faces import distance, read_image

    no_extra(extra)
    if args.calibrate:
        return _calibrate(args)
    if len(args.images) != 2:
        raise InputError("verify takes two images: edgecnn verify IMG1 IMG2 (or --calibrate DIR)")
    a, b = (read_image(p) for p in args.images)
    v = _verifier(args)
    ea, eb = v.embed(a, str(args.images[0])), v.embed(b, str(args.images[1]))
    d = distance(ea.vector, eb.vector)
    thr = args.threshold if args.threshold is not None else v.embedder.threshold
    result = {"distance": round(d, 4), "threshold": thr, "same": bool(d <= thr), "embedder": v.embedder.identity}
    print_json(result) if args.json else console().print(f"{'same person' if result['same'] else 'different people'}: distance {d:.3f} (threshold {thr:.3f})")
    return 0


def _calibrate(args) -> int:
    from pathlib import Path

    from edgecnn.device.faces import calibrate_from_folder

    if not Path(args.calibrate).is_dir():
        raise InputError(f"--calibrate {args.calibrate} is not a folder of identity subfolders")
    result = calibrate_from_folder(_verifier(args), args.calibrate, args.far)
    if args.gallery or args.bundle:  # the gallery's threshold (a bundle's gallery travels with it)
        from edgecnn.device.bundle import gallery_path
        from edgecnn.device.gallery import Gallery

        with Gallery(gallery_path(args.gallery, args.bundle), create=False) as g:
            g.set_threshold(result["threshold"])
            result["saved_to"] = str(g.path)
    d = result["at_default"]
    print_json(result) if args.json else console().print(
        f"threshold {result['threshold']:.3f} ({result['rule']}): FAR {result['far']:.3f}, FRR {result['frr']:.3f}, "
        f"EER {result['eer']:.3f}, AUC {result['auc']:.3f} over {result['pairs']['same']} same / {result['pairs']['different']} different pairs\n"
        f"at the default {d['threshold']:.3f}: FAR {d['far']:.3f}, FRR {d['frr']:.3f}" + (f"\nsaved to {result['saved_to']}" if result.get("saved_to") else "")
    )
    return 0


def run_identify(args, extra) -> int:
    from edgecnn.device.bundle import gallery_path
    from edgecnn.device.faces import read_image
    from edgecnn.device.gallery import Gallery, shown

    no_extra(extra)
    img = read_image(args.image)
    with Gallery(gallery_path(args.gallery, args.bundle), create=False, readonly=True) as g:
        v = _verifier(args)
        g.check_embedder(v.embedder.identity, v.embedder.dim)
        e = v.embed(img, str(args.image))
        thr = args.threshold if args.threshold is not None else float(g.meta("threshold") or v.embedder.threshold)
        m = g.identify(e.vector, thr)
    print_json(m.as_dict()) if args.json else console().print(
        f"{shown(m.name) if m.name else 'unknown'} (distance {m.distance:.3f} to {shown(m.nearest)}, threshold {thr:.3f})", markup=False, highlight=False
    )
    return 0


def run_bundle(args, extra) -> int:
    from edgecnn.workstation.bundler import make_bundle, parse_enrolments

    no_extra(extra)
    people = parse_enrolments(args.enroll)
    check_clashes(
        {"--output": args.output}, {"--gallery": args.gallery, "--embedder": args.embedder, **{f"--enroll {n}={p}": p for n, ps in people.items() for p in ps}}
    )
    style = None
    if args.with_style:
        from edgecnn.workstation.stylebuild import ensure_stylizer

        style = ensure_stylizer(256, "fp32", progress=not args.json)
    m = make_bundle(
        args.target,
        args.output,
        gallery=args.gallery,
        embedder=args.embedder,
        with_embedder=not args.no_embedder,
        progress=not args.json,
        force=args.force,
        enroll=people,
        with_gallery=not args.no_gallery,
        style_model=style,
    )
    if args.json:
        print_json(m)
        return 0
    out = m["output"]
    if m.get("gallery"):
        nxt = f"edgecnn camera --bundle {out} --verify"
    elif m.get("embedder"):
        nxt = f"edgecnn enroll NAME IMG… --bundle {out}, then edgecnn camera --bundle {out} --verify"
    else:
        nxt = f"edgecnn camera --bundle {out}"
    console().print(f"bundle for {m['target']} in {out}: " + ", ".join(m["files"]) + f"\non the device: {nxt}")
    for w in m.get("warnings", []):
        console().print(f"[bold yellow]warning:[/] {w}")
    return 0
