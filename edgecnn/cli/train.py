"""``edgecnn train yolo|siamese``: small real training runs (workstation side)."""

from __future__ import annotations

from pathlib import Path

from edgecnn.cli._output import check_output_folder, console, image_size, no_extra, positive_int, print_json
from edgecnn.core.errors import InputError
from edgecnn.core.files import check_clashes, write_json


def add_parser(sub) -> None:
    sp = sub.add_parser("train", help="train the yolo detector on generated scenes, or a siamese embedder with triplet loss")
    sp.add_argument("what", choices=["yolo", "siamese"])
    sp.add_argument("--output", help="the .keras to write (a .edgecnn.json beside it carries labels/anchors/preprocessing)")
    sp.add_argument("--data", help="siamese: folder with one subfolder per identity, or bundled:digits")
    sp.add_argument("--holdout", type=positive_int, help="siamese: identities held out for the verification test (default 30%%)")
    sp.add_argument("--backbone", default="lenet5", help="siamese: registered backbone (default lenet5)")
    sp.add_argument("--embedding-dim", type=positive_int, default=32)
    sp.add_argument("--images", type=positive_int, default=1600, help="yolo: generated training scenes (default 1600)")
    sp.add_argument("--epochs", type=positive_int)
    sp.add_argument("--input-size", type=image_size)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--report", help="write the JSON report to this file")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(run=run)


def _check(args) -> Path:
    out = Path(args.output or f"{args.what}.keras")
    if out.suffix != ".keras":
        raise InputError(f"--output must end in .keras, got {out}")
    check_output_folder(out)
    check_output_folder(args.report, "report")
    from edgecnn.models.sidecar import sidecar_path

    data = args.data if args.data and Path(args.data).exists() else None
    check_clashes({"--output": out, "--report": args.report, "sidecar": sidecar_path(out)}, {"--data": data})
    for name in ("epochs", "images", "input_size", "embedding_dim"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    return out


def run(args, extra) -> int:
    from edgecnn.models.sidecar import save_with_sidecar

    no_extra(extra)
    out = _check(args)
    if args.what == "yolo":
        from edgecnn.models.train.yolo import train_yolo

        model, report, _ = train_yolo(n_train=args.images, epochs=args.epochs or 30, input_size=args.input_size or 96, seed=args.seed, progress=not args.json)
        save_with_sidecar(model, out, {"task": "detection", "labels": report["labels"], "anchors": report["anchors"], "preprocess": report["preprocess"]})
    else:
        from edgecnn.calibration.datasets import identity_images
        from edgecnn.models.train.siamese import train_siamese

        data = identity_images(args.data, progress=not args.json)
        model, report = train_siamese(
            data,
            holdout=args.holdout,
            backbone=args.backbone,
            embedding_dim=args.embedding_dim,
            epochs=args.epochs or 30,
            input_size=args.input_size,
            seed=args.seed,
            progress=not args.json,
        )
        save_with_sidecar(model, out, {"task": "embedding", "preprocess": report["preprocess"], "threshold": report["threshold"]})
    report["output"] = str(out)
    if args.report:
        write_json(args.report, report)
    if args.json:
        print_json(report)
    elif args.what == "yolo":
        console().print(
            f"{out}: mAP@0.5 {report['map50']:.3f} on {report['val_images']} held-out generated scenes "
            f"({', '.join(f'{k} {v:.3f}' for k, v in report['ap50_per_class'].items())})\nnext: edgecnn convert {out} --precision int8"
        )
    else:
        console().print(
            f"{out}: on {len(report['heldout_identities'])} identities never seen in training: ROC AUC {report['roc_auc']:.3f}, "
            f"EER {report['eer']:.3f} (threshold {report['threshold']:.3f})"
        )
    return 0
