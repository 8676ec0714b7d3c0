"""The benchmark matrix's cells (:mod:`edgecnn.workstation.benchmark`): planning them, converting,
profiling or predicting each, and the per-cell cache that lets an interrupted run resume. The local
runner is here; the Ray runner (:mod:`edgecnn.workstation.benchmark_ray`) uses the same cells."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn import __version__
from edgecnn.core.errors import EdgecnnError, InputError, check_stop, first_line
from edgecnn.core.files import write_json

MARKER = ".edgecnn-benchmark"
MEASURED_HERE = "cpu"  # the target this machine measures itself


@dataclass
class Cell:
    model: str
    options: dict
    precision: str
    target: str
    io: str = "float"
    settings: dict = field(default_factory=dict)  # calibration, eval, samples, runs: part of the hash

    def conversion_key(self) -> str:
        return _hash(
            {
                "model": self.model,
                "options": self.options,
                "precision": self.precision,
                "io": self.io,
                "settings": {k: v for k, v in self.settings.items() if k != "runs"},
                "version": __version__,
            }
        )

    def key(self) -> str:
        return _hash({"conversion": self.conversion_key(), "target": self.target, "runs": self.settings.get("runs")})

    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.model}[{opts}] {self.precision} @{self.target}"


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_sets(specs) -> list[tuple[str, list]]:
    """``--set alpha=0.35,0.5`` (repeatable) -> [("alpha", [0.35, 0.5]), ...]."""
    from edgecnn.core.values import parse_value

    out = []
    for spec in specs or ():
        name, eq, values = str(spec).partition("=")
        name = name.strip().replace("-", "_")
        vals = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
        if not eq or not name or not vals:
            raise InputError(f"--set {spec!r}: expected NAME=V1,V2,... (e.g. alpha=0.35,0.5)")
        if any(n == name for n, _ in out):
            raise InputError(f"--set {name} given twice; list every value in one --set")
        out.append((name, vals))
    return out


def plan_cells(models, sets, precisions, targets, settings: dict) -> list[Cell]:
    """Every cell of the matrix. An option applies to the models that have it (an option no model has
    is an error); the precision and target names are checked here, the builders when a cell runs."""
    from edgecnn.models import get_spec
    from edgecnn.targets import load_target
    from edgecnn.targets.profile import PRECISIONS

    if not models or not precisions or not targets:
        raise InputError("benchmark needs --models, --precisions and --targets (comma-separated)")
    for p in precisions:
        if p not in PRECISIONS:
            raise InputError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    profiles = {t: load_target(t) for t in targets}  # an unknown target lists the known ones
    knobs = {m: set(get_spec(m).knobs()) | {"input_size", "classes"} for m in models}
    for name, _ in sets:
        if not any(name in k for k in knobs.values()):
            raise InputError(f"--set {name}: none of {', '.join(models)} has that option")
    cells = []
    for m in models:
        mine = [(n, v) for n, v in sets if n in knobs[m]]
        for combo in itertools.product(*[v for _, v in mine]) if mine else [()]:
            options = dict(zip([n for n, _ in mine], combo))
            for p in precisions:
                for t in targets:
                    io = profiles[t].io if p == "int8" else "float"
                    cells.append(Cell(m, options, p, t, io, dict(settings)))
    return cells


def convert_cell(cell: Cell, folder: str) -> dict:
    """Convert one cell's model; returns the report's facts and the file's bytes."""
    from edgecnn.converters.convert import ConvertOptions, convert
    from edgecnn.models._tf import keras

    keras.utils.set_random_seed(int(cell.settings.get("seed", 0)))  # the same weights wherever the cell runs
    s = cell.settings
    out = Path(folder) / f"{cell.conversion_key()}.tflite"
    t0 = time.perf_counter()
    rep = convert(
        cell.model,
        ConvertOptions(
            precision=cell.precision,
            io=cell.io,
            output=str(out),
            calibration=s.get("calibration") or "bundled",
            samples=int(s.get("samples", 64)),
            eval_dir=s.get("eval"),
            debug_layers=False,
            measure_latency=False,
            builder_options=dict(cell.options),
        ),
    )
    acc = rep.get("accuracy") or {}
    return {
        "size_bytes": rep["size_bytes"],
        "float_size_bytes": rep["float_size_bytes"],
        "convert_seconds": round(time.perf_counter() - t0, 2),
        "accuracy_vs_float": {k: acc[k] for k in ("top1_agreement", "cosine_mean", "mean_abs_error") if k in acc} or None,
        "eval_top1": (rep.get("eval") or {}).get("top1"),
        "float_eval_top1": (rep.get("eval") or {}).get("float_top1"),
        "coverage": {d: c["fraction"] for d, c in rep["coverage"].items()},
        "model_file": str(out),
        "node": node_name(),
    }


def profile_bytes(data: bytes, target: str, runs: int) -> dict:
    """Latency of a model given as bytes (Ray hands them over from its object store) on this node."""
    from edgecnn.core.files import remove_temp, temp_file

    fd, tmp = temp_file(suffix=".tflite")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return profile_file(tmp, target, runs)
    finally:
        remove_temp(tmp)


def profile_file(path: str, target: str, runs: int) -> dict:
    from edgecnn.device.profiling import profile_model

    r = profile_model(path, target=target, runs=runs, warmup=2)
    lat = r["latency_ms"]
    return {
        "latency_ms": {"p50": lat["p50"], "p90": lat["p90"], "mean": lat["mean"]},
        "latency_source": "measured",
        "threads": r["threads"],
        "node": node_name(),
        "machine": r["machine"].get("machine"),
    }


def predict_cell(path: str, target: str) -> dict:
    from edgecnn.device.profiling import predict_latency

    try:
        p = predict_latency(path, target)
    except InputError as exc:
        return {"latency_ms": None, "latency_source": "none", "latency_note": str(exc)}
    return {
        "latency_ms": {"p50": p["estimate_ms"], "range": p["range_ms"]},
        "latency_source": "predicted",
        "latency_note": f"predicted: {p['basis']} (leave-one-out error ±{p['leave_one_out_error']['mean']:.0%} mean)",
    }


def node_name() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside a Ray worker
        pass
    return socket.gethostname()


class Results:
    """The output folder: one JSON per finished cell (the cache), converted models, reports."""

    def __init__(self, folder):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"--output {self.folder} exists and is not a folder")
        if self.folder.is_dir() and any(self.folder.iterdir()) and not (self.folder / MARKER).is_file():
            raise InputError(f"--output {self.folder} is not empty and holds no earlier benchmark; choose a new folder")
        if not self.folder.parent.is_dir():
            raise InputError(f"the folder for --output does not exist: {self.folder.parent}")
        try:  # before any cell runs: a read-only or full medium is one line, not an error after an hour of work
            (self.folder / "cells").mkdir(parents=True, exist_ok=True)
            (self.folder / "models").mkdir(exist_ok=True)
            (self.folder / MARKER).write_text("edgecnn benchmark results; a later run resumes from cells/\n")
        except OSError as exc:
            raise InputError(f"cannot write --output {self.folder}: {exc.strerror} (a read-only or full disk?); choose another folder") from None

    def cached(self, cell: Cell) -> dict | None:
        f = self.folder / "cells" / f"{cell.key()}.json"
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a damaged cache entry: run the cell again

    def store(self, record: dict) -> None:
        write_json(self.folder / "cells" / f"{record['key']}.json", record)


def _record(cell: Cell, **kw) -> dict:
    return {
        "key": cell.key(),
        "label": cell.label(),
        "model": cell.model,
        "options": cell.options,
        "precision": cell.precision,
        "target": cell.target,
        "io": cell.io,
        "status": "ok",
        **kw,
    }


def run_local(cells, results: Results, runs: int, progress: bool = False) -> list[dict]:
    """Cells in this process, cached ones skipped; conversions shared between targets."""
    from edgecnn.core._progress import progress as progress_bar

    records, converted = [], {}
    with progress_bar("benchmark", len(cells), progress) as tick:
        for cell in cells:
            check_stop()  # Ctrl-C or SIGTERM stops between cells, even if a library swallowed its exception
            tick(description=cell.label())
            rec = results.cached(cell)
            if rec is None:
                rec = _run_cell_here(cell, results, converted, runs)
                check_stop()  # a cell cut short by a stop is not a result
                if rec["status"] == "ok":  # a failure (a full disk, a lost node) is tried again next run
                    results.store(rec)
            else:
                rec["cached"] = True
            records.append(rec)
            tick(advance=1)
    return records


def cell_error(exc: BaseException) -> str:
    return first_line(exc, 300) if isinstance(exc, EdgecnnError) else f"{type(exc).__name__}: {first_line(exc, 300)}"


def finish(cell: Cell, conv: dict, latency: dict) -> dict:
    """A cell's record from its conversion's facts and its latency (``node``: where latency came from)."""
    conv = dict(conv)
    return _record(cell, **{k: v for k, v in conv.items() if k != "node"}, convert_node=conv.get("node"), **latency)


def _run_cell_here(cell: Cell, results: Results, converted: dict, runs: int) -> dict:
    ck = cell.conversion_key()
    if ck not in converted:
        try:
            converted[ck] = convert_cell(cell, str(results.folder / "models"))
        except Exception as exc:  # noqa: BLE001 - one cell's failure (a bad option, a converter error) must not end the matrix
            converted[ck] = {"error": cell_error(exc)}
    conv = converted[ck]
    if "error" in conv:
        return _record(cell, status="failed", error=conv["error"])
    try:
        here = cell.target == MEASURED_HERE
        latency = profile_file(conv["model_file"], cell.target, runs) if here else predict_cell(conv["model_file"], cell.target)
    except Exception as exc:  # noqa: BLE001
        return _record(cell, status="failed", error=cell_error(exc))
    return finish(cell, conv, latency)
