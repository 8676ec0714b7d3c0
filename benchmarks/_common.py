"""Shared bits of the benchmark scripts: where results go, how tables print."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def save(name: str, data: dict) -> Path:
    from edgecnn.device.profiling import machine_info

    RESULTS.mkdir(exist_ok=True)
    data = {"machine": machine_info(), "python": platform.python_version(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def table(title: str, columns: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="left" if c in (columns[0], "note") else "right")
    for r in rows:
        t.add_row(*[f"{v:.3f}" if isinstance(v, float) else "–" if v is None else str(v) for v in r])
    Console(width=160).print(t)


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
