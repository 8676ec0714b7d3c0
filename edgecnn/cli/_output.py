"""What every command shares: argument values, JSON and table output, human-readable numbers."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path
from typing import Any

from edgecnn.errors import InputError
from edgecnn.files import json_default


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


def no_extra(extra: list[str]) -> None:
    if extra:
        raise InputError(f"unexpected arguments: {' '.join(extra)}")


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160  # no terminal: don't squeeze tables to 80
    return Console(stderr=stderr, highlight=False, width=width)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=json_default) + "\n")


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


def check_output_folder(path, what: str = "output") -> None:
    """An output file's folder must exist before any work starts."""
    if path is None:
        return
    folder = Path(path).parent
    if str(folder) and not folder.is_dir():
        raise InputError(f"{what} folder does not exist: {folder}")
