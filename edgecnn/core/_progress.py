"""One progress bar for every long step (catalog, calibration reads, profiling, the camera loop):
on stderr, gone when done, and a no-op when disabled (``--json``)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def progress(label: str, total: int | None, enabled: bool = True):
    """Yields ``tick(advance=0, description=None, status=None)``; a no-op callable when disabled."""
    if not enabled:
        yield lambda advance=0, description=None, status=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(f"{label} {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("", total=total, status="")
    bar.start()

    def tick(advance=0, description=None, status=None):
        kw = {"advance": advance}
        if description is not None:
            kw["description"] = description
        if status is not None:
            kw["status"] = status
        bar.update(task, **kw)

    try:
        yield tick
    finally:
        bar.stop()


def stage_printer(prefix: str, enabled: bool = True):
    """One line per stage on stderr (``convert: converting …``), for a person at a terminal (or
    ``EDGECNN_PROGRESS=1``); silent under ``--json`` and in pipes, where only errors are written."""
    import os
    import sys

    on = enabled and (sys.stderr.isatty() or os.environ.get("EDGECNN_PROGRESS") == "1")

    def stage(message: str) -> None:
        if on:
            print(f"{prefix}: {message}", file=sys.stderr, flush=True)

    return stage
