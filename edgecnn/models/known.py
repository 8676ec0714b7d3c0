"""The registry's table as it ships with the package (``catalog.json``): names, families, papers,
knobs and the stats at default size, readable without TensorFlow. ``edgecnn models`` prints it in a
fraction of a second and an unknown model name is rejected before Keras loads; a test rebuilds
every model and checks the file against them (regenerate: ``python -m edgecnn.models.known``)."""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path

from edgecnn.errors import InputError

CATALOG_FILE = Path(__file__).with_name("catalog.json")


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


if __name__ == "__main__":
    from edgecnn.models.catalog import model_catalog

    CATALOG_FILE.write_text(json.dumps(model_catalog(progress=True), indent=1) + "\n")
    print(f"wrote {CATALOG_FILE}")
