"""What every command shares: argument values, JSON and table output, human-readable numbers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from edgecnn.core.errors import InputError
from edgecnn.core.files import json_default
from edgecnn.core.values import parse_value


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
    tty = stream.isatty()
    width = None if tty or os.environ.get("COLUMNS") else 160  # no terminal: don't squeeze tables to 80
    # no terminal: a line is never broken in two (a script reading the output would see two records)
    return Console(stderr=stderr, highlight=False, width=width, soft_wrap=not tty)


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
    """An output file's folder must exist and be writable before any work starts (a read-only medium
    found after an hour's conversion costs the hour)."""
    if path is None:
        return
    folder = Path(path).parent if str(Path(path).parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{what} folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise InputError(f"cannot write {what} to {folder} (read-only or permission denied); choose another folder")


# ---------------------------------------------------------------- argument types: checked before any work
def _bounded(kind, ok, what: str):
    """An argparse type: ``kind(text)``, finite, and ``ok(value)``; otherwise one line naming ``what``."""

    def parse(text: str):
        import argparse
        import math

        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if (isinstance(v, float) and not math.isfinite(v)) or not ok(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return v

    parse.__name__ = what
    return parse


positive_int = _bounded(int, lambda v: v >= 1, "a positive integer")
nonneg_int = _bounded(int, lambda v: v >= 0, "a whole number >= 0")
positive_float = _bounded(float, lambda v: v > 0, "a positive number")
nonneg_float = _bounded(float, lambda v: v >= 0, "a number >= 0")
fraction = _bounded(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")
image_size = _bounded(int, lambda v: 8 <= v <= 4096, "an input size from 8 to 4096 pixels")
pixel_value = _bounded(int, lambda v: 0 <= v <= 255, "a pixel value from 0 to 255")


def choice(options):
    """An argparse type for one of ``options``, in any case (``RGB`` is ``rgb``); anything else is one
    line listing them, before any work."""

    def parse(text: str):
        import argparse

        value = text.strip().lower()
        if value not in options:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {' | '.join(options)}")
        return value

    parse.__name__ = "one of " + ", ".join(options)
    return parse


# Builder options checked before TensorFlow is imported: a typo costs under a second.
KNOB_RULES = {
    "alpha": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 4, "a width multiplier in (0, 4]"),
    "input_size": (
        lambda v: (
            (isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 4096)
            or (isinstance(v, (tuple, list)) and all(isinstance(d, int) and d > 0 for d in v))
        ),
        "an input size from 8 to 4096",
    ),
    "phi": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 12, "a compound coefficient from 0 to 12"),
    "num_classes": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive number of classes"),
    "classes": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive number of classes"),
}


def check_knobs(knobs: dict) -> dict:
    for key, value in knobs.items():
        rule = KNOB_RULES.get(key)
        if rule and not rule[0](value):
            raise InputError(f"--{key.replace('_', '-')} {value!r} is not {rule[1]}")
    return knobs
