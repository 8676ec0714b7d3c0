"""Command-line values as Python: what ``--set alpha=0.35,0.5`` and a builder's ``--name value`` mean.
Shared by the CLI and the benchmark library (which must not import its shell)."""

from __future__ import annotations

import ast
from typing import Any


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
