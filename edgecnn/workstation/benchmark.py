"""``edgecnn benchmark``: the model x options x precision x target matrix, on this machine or across a
Ray cluster whose nodes include real devices.

A *cell* is one (model, builder options, precision, target). Cells that share a conversion (same
model, options, precision and integer IO) share one converted file. Every cell records size,
accuracy against the float model (and real top-1 with ``--eval``), op coverage per delegate, the
conversion time and latency: measured on a node of that target where there is one (this machine is
the ``cpu`` target; under Ray a node that declares the target as a resource, e.g. a Pi started with
``--resources '{"rpi5": 1}'``), else predicted from the target's fitted references and marked
``"predicted"``.

Results are cached per cell under ``OUTPUT/cells/<hash>.json`` (the hash covers everything that
changes the result), so an interrupted run resumes where it stopped. A failed cell is recorded with
its one-line error and the matrix goes on. Ray mode uses Ray's own scheduling (custom resources
``convert`` and the target names), object store (model bytes travel in it: no shared disk) and task
retries (a node lost mid-run costs only its cells).
"""

from __future__ import annotations

import time
from pathlib import Path

from edgecnn.core.errors import InputError
from edgecnn.workstation.benchmark_cells import Results, parse_sets, plan_cells, run_local
from edgecnn.workstation.benchmark_report import write_outputs


def run_ray(cells, results: Results, runs: int, address: str, progress: bool = False) -> list[dict]:
    """Conversions as Ray tasks on nodes with the ``convert`` resource, profiling as tasks on nodes
    that declare the cell's target (model bytes through the object store); retried if a node is lost."""
    from edgecnn.workstation.benchmark_ray import run_cells

    return run_cells(cells, results, runs, address, progress)


def run_benchmark(
    models,
    sets,
    precisions,
    targets,
    output,
    calibration=None,
    eval_dir=None,
    samples: int = 64,
    runs: int = 30,
    ray_address: str | None = None,
    progress: bool = False,
) -> dict:
    if eval_dir and not Path(eval_dir).is_dir():
        raise InputError(f"--eval {eval_dir} is not a folder of class subfolders")
    if calibration and calibration != "bundled" and not calibration.startswith("bundled:") and not Path(calibration).exists():
        raise InputError(f"--calibration {calibration} not found")
    settings = {
        "calibration": calibration or "bundled",
        "eval": str(Path(eval_dir).resolve()) if eval_dir else None,
        "samples": samples,
        "runs": runs,
        "seed": 0,
    }
    cells = plan_cells(models, parse_sets(sets) if sets and isinstance(sets[0], str) else (sets or []), precisions, targets, settings)
    if ray_address:  # the cluster answers before anything is written
        from edgecnn.workstation.benchmark_ray import connect

        connect(ray_address)
    results = Results(output)
    t0 = time.perf_counter()
    records = run_ray(cells, results, runs, ray_address, progress) if ray_address else run_local(cells, results, runs, progress)
    config = {
        "models": models,
        "sets": sets,
        "precisions": precisions,
        "targets": targets,
        "settings": settings,
        "mode": "ray" if ray_address else "local",
        "seconds": round(time.perf_counter() - t0, 2),
    }
    files = write_outputs(records, results.folder, config)
    failed = [r for r in records if r["status"] == "failed"]
    return {
        "cells": len(records),
        "ok": sum(r["status"] == "ok" for r in records),
        "failed": len(failed),
        "first_error": f"{failed[0]['label']}: {failed[0].get('error')}" if failed else None,
        "cached": sum(bool(r.get("cached")) for r in records),
        "seconds": config["seconds"],
        "mode": config["mode"],
        **files,
    }
