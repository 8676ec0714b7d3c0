"""The registry's table as it ships with the package (``catalog.json``): names, families, papers,
knobs and the stats at default size, readable without TensorFlow. ``edgecnn models`` prints it in a
fraction of a second and an unknown model name is rejected before Keras loads; a test rebuilds
every model and checks the file against them (regenerate: ``python -m edgecnn.models.catalog``)."""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path

from edgecnn.core.errors import InputError

CATALOG_FILE = Path(__file__).with_name("catalog.json")
ALIASES = {"classes": "num_classes", "input_size": "input_shape"}  # the CLI's short names of builder options


@lru_cache(maxsize=1)
def catalog() -> list[dict]:
    return json.loads(CATALOG_FILE.read_text())


def names() -> list[str]:
    return [row["name"] for row in catalog()]


def check_name(name: str) -> str:
    """A registered model name, or exit 2 with the close matches: no TensorFlow needed."""
    known = names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(known)}"
        raise InputError(f"unknown model {name!r}{hint} (list them with: edgecnn models)")
    return name


def check_options(name: str, options: dict) -> None:
    """Builder options a registered model has, or exit 2 with the valid list: no TensorFlow needed (the
    catalog carries each model's options; the registry checks them again when it builds)."""
    row = next((r for r in catalog() if r["name"] == check_name(name)), None)
    valid = set(row.get("knobs") or {}) - {"kwargs"}
    for key in options:
        k = key.replace("-", "_")
        if ALIASES.get(k, k) not in valid:
            raise InputError(f"model {name!r} has no option {ALIASES.get(k, k)!r}; valid options: " + ", ".join(sorted(valid | {"classes", "input_size"})))
