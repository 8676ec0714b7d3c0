"""The ``edgecnn`` command line: thin argument parsing over library functions that tests call too.

Exit codes: 0 ok, 1 the work failed, 2 bad usage or bad input. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from typing import Any, Callable

from edgecnn import __version__
from edgecnn.errors import EdgecnnError, InputError

_COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {}


def command(name: str):
    def deco(fn):
        _COMMANDS[name] = fn
        return fn

    return deco


def parse_value(text: str) -> Any:
    """A command-line value as Python: numbers, tuples, lists, dicts, booleans, else the string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_knobs(tokens: list[str]) -> dict[str, Any]:
    """``--alpha 0.5 --input-size=96`` -> ``{"alpha": 0.5, "input_size": 96}``."""
    knobs: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) <= 2:
            raise InputError(f"unexpected argument {tok!r}; builder options look like --alpha 0.5")
        key, eq, value = tok[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                raise InputError(f"option --{key} needs a value")
            value = tokens[i + 1]
            i += 1
        knobs[key.replace("-", "_")] = parse_value(value)
        i += 1
    return knobs


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160  # no terminal: don't squeeze tables to 80
    return Console(stderr=stderr, highlight=False, width=width)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def human(n: float, unit: str = "") -> str:
    for suffix in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{suffix}{unit}" if suffix else f"{n:g}{unit}"
        n /= 1000
    return f"{n:.3g}P{unit}"


def human_bytes(n: float) -> str:
    for suffix in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or suffix == "GiB":
            return f"{n:.1f} {suffix}" if suffix != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


# ---------------------------------------------------------------- models / inspect


@command("models")
def cmd_models(args, extra) -> int:
    from edgecnn.models.catalog import model_catalog

    if extra:
        raise InputError(f"unexpected arguments: {' '.join(extra)}")
    rows = model_catalog(progress=not args.json)
    if args.json:
        print_json(rows)
        return 0
    from rich.table import Table

    table = Table(title="edgecnn models (default configuration, batch 1)")
    for col, just in [("name", "left"), ("family", "left"), ("input", "left"), ("params", "right"), ("MACs", "right"), ("peak activations", "right")]:
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row(
            r["name"],
            r["family"],
            "x".join(map(str, r["input_shape"])),
            f"{r['params']:,}",
            human(r["macs"]),
            human_bytes(r["peak_activation_bytes"]),
        )
    _console().print(table)
    return 0


@command("inspect")
def cmd_inspect(args, extra) -> int:
    from edgecnn import models

    knobs = parse_knobs(extra)
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
    con = _console()
    con.print(table)
    con.print(
        f"params {st['params']:,} (trainable {st['trainable_params']:,}) · MACs {human(st['macs'])} · "
        f"peak activations {human_bytes(st['peak_activation_bytes'])} · input {tuple(st['input_shape'])}"
    )
    return 0


# ---------------------------------------------------------------- parser and main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgecnn",
        description="Build, quantize, convert and measure CNNs for phones, Raspberry Pi and Coral Edge TPU.",
    )
    p.add_argument("--version", action="version", version=f"edgecnn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sp = sub.add_parser("models", help="list every registered model with params, MACs and peak memory")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sp = sub.add_parser(
        "inspect",
        help="per-layer table of one model (builder options as --name value)",
        description="Per-layer table (name, output shape, params, MACs) and totals of one model.",
        epilog="Builder options are the builder's own arguments: --input-size N, --classes N, --alpha A, "
        "--phi P, --include-top false, ... An unknown option lists the valid ones.",
    )
    sp.add_argument("name", help="registered model name (see: edgecnn models)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


# Commands whose unknown --options are builder knobs rather than mistakes.
_ACCEPTS_KNOBS = {"inspect"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if extra and args.command not in _ACCEPTS_KNOBS:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(_COMMANDS[args.command](args, extra) or 0)
    except EdgecnnError as exc:
        print(f"edgecnn {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"edgecnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if os.environ.get("EDGECNN_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"edgecnn {args.command}: internal error: {type(exc).__name__}: {msg} (set EDGECNN_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
