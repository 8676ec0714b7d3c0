"""``edgecnn models`` and ``edgecnn inspect``: the registry and one model's per-layer table."""

from __future__ import annotations

from edgecnn.cli._output import check_knobs, console, human, human_bytes, no_extra, parse_knobs, print_json


def add_parser(sub) -> None:
    sp = sub.add_parser("models", help="list every registered model with params, MACs and peak memory")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(run=run_models)

    sp = sub.add_parser(
        "inspect",
        help="per-layer table of one model (builder options as --name value)",
        description="Per-layer table (name, output shape, params, MACs) and totals of one model.",
        epilog="Builder options are the builder's own arguments: --input-size N, --classes N, --alpha A, "
        "--phi P, --include-top false, ... An unknown option lists the valid ones.",
    )
    sp.add_argument("name", help="registered model name (see: edgecnn models)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(run=run_inspect, accepts_knobs=True)


def run_models(args, extra) -> int:
    from edgecnn.models.known import catalog

    no_extra(extra)
    rows = catalog()  # shipped with the package and checked against the builders by the tests: no TensorFlow
    if args.json:
        print_json(rows)
        return 0
    from rich.table import Table

    table = Table(title="edgecnn models (default configuration, batch 1)")
    for col, just in [("name", "left"), ("family", "left"), ("input", "left"), ("params", "right"), ("MACs", "right"), ("peak activations", "right")]:
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row(
            r["name"], r["family"], "x".join(map(str, r["input_shape"])), f"{r['params']:,}", human(r["macs"]), human_bytes(r["peak_activation_bytes"])
        )
    console().print(table)
    return 0


def run_inspect(args, extra) -> int:
    from edgecnn.models.known import check_options

    knobs = check_knobs(parse_knobs(extra))
    check_options(args.name, knobs)  # the name and every option, before TensorFlow loads
    from edgecnn import models

    resolved = models.resolve_kwargs(args.name, knobs)  # exit 2 with valid options before building
    model = models.build(args.name, **resolved)
    rows = models.layer_table(model)
    st = models.stats(model)
    spec = models.get_spec(args.name)
    report = {"name": args.name, "family": spec.family, "paper": spec.paper, "options": resolved, **st, "layers": rows}
    if args.json:
        print_json(report)
        return 0
    from rich.table import Table

    table = Table(title=f"{args.name} — {spec.paper}")
    for col, just in [("layer", "left"), ("type", "left"), ("output shape", "left"), ("params", "right"), ("MACs", "right")]:
        table.add_column(col, justify=just)
    for r in rows:
        shape = r["output_shape"]
        table.add_row(r["name"], r["type"], str(tuple(shape)) if shape and isinstance(shape[0], int) else str(shape), f"{r['params']:,}", f"{r['macs']:,}")
    table.add_section()
    table.add_row("total", "", str(tuple(st["output_shape"])), f"{st['params']:,}", f"{st['macs']:,}")
    con = console()
    con.print(table)
    con.print(
        f"params {st['params']:,} (trainable {st['trainable_params']:,}) · MACs {human(st['macs'])} · "
        f"peak activations {human_bytes(st['peak_activation_bytes'])} · input {tuple(st['input_shape'])}"
    )
    return 0
