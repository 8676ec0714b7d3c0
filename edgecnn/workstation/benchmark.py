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

import csv
import hashlib
import io
import itertools
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn import __version__
from edgecnn.core.errors import EdgecnnError, InputError, check_stop, first_line
from edgecnn.core.files import atomic_write, write_json

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
        return _hash({"model": self.model, "options": self.options, "precision": self.precision, "io": self.io,
                      "settings": {k: v for k, v in self.settings.items() if k != "runs"}, "version": __version__})

    def key(self) -> str:
        return _hash({"conversion": self.conversion_key(), "target": self.target, "runs": self.settings.get("runs")})

    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.model}[{opts}] {self.precision} @{self.target}"


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_sets(specs) -> list[tuple[str, list]]:
    """``--set alpha=0.35,0.5`` (repeatable) -> [("alpha", [0.35, 0.5]), ...]."""
    from edgecnn.cli._output import parse_value

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


# ---------------------------------------------------------------- the work of one cell, anywhere
def convert_cell(cell: Cell, folder: str) -> dict:
    """Convert one cell's model; returns the report's facts and the file's bytes."""
    from edgecnn.converters.convert import ConvertOptions, convert
    from edgecnn.models._tf import keras

    keras.utils.set_random_seed(int(cell.settings.get("seed", 0)))  # the same weights wherever the cell runs
    s = cell.settings
    out = Path(folder) / f"{cell.conversion_key()}.tflite"
    t0 = time.perf_counter()
    rep = convert(cell.model, ConvertOptions(precision=cell.precision, io=cell.io, output=str(out), calibration=s.get("calibration") or "bundled",
                                             samples=int(s.get("samples", 64)), eval_dir=s.get("eval"), debug_layers=False,
                                             measure_latency=False, builder_options=dict(cell.options)))
    acc = rep.get("accuracy") or {}
    return {"size_bytes": rep["size_bytes"], "float_size_bytes": rep["float_size_bytes"], "convert_seconds": round(time.perf_counter() - t0, 2),
            "accuracy_vs_float": {k: acc[k] for k in ("top1_agreement", "cosine_mean", "mean_abs_error") if k in acc} or None,
            "eval_top1": (rep.get("eval") or {}).get("top1"), "float_eval_top1": (rep.get("eval") or {}).get("float_top1"),
            "coverage": {d: c["fraction"] for d, c in rep["coverage"].items()}, "model_file": str(out),
            "node": node_name()}


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
    return {"latency_ms": {"p50": lat["p50"], "p90": lat["p90"], "mean": lat["mean"]}, "latency_source": "measured",
            "threads": r["threads"], "node": node_name(), "machine": r["machine"].get("machine")}


def predict_cell(path: str, target: str) -> dict:
    from edgecnn.device.profiling import predict_latency

    try:
        p = predict_latency(path, target)
    except InputError as exc:
        return {"latency_ms": None, "latency_source": "none", "latency_note": str(exc)}
    return {"latency_ms": {"p50": p["estimate_ms"], "range": p["range_ms"]}, "latency_source": "predicted",
            "latency_note": f"predicted: {p['basis']} (leave-one-out error ±{p['leave_one_out_error']['mean']:.0%} mean)"}


def node_name() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside a Ray worker
        pass
    return socket.gethostname()


# ---------------------------------------------------------------- the matrix
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
    return {"key": cell.key(), "label": cell.label(), "model": cell.model, "options": cell.options, "precision": cell.precision,
            "target": cell.target, "io": cell.io, "status": "ok", **kw}


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


def run_ray(cells, results: Results, runs: int, address: str, progress: bool = False) -> list[dict]:
    """Conversions as Ray tasks on nodes with the ``convert`` resource, profiling as tasks on nodes
    that declare the cell's target (model bytes through the object store); retried if a node is lost."""
    from edgecnn.workstation.benchmark_ray import run_cells

    return run_cells(cells, results, runs, address, progress)


def write_outputs(records: list[dict], folder: Path, config: dict) -> dict:
    """results.json, results.csv, a Pareto plot per target and index.html."""
    folder = Path(folder)
    write_json(folder / "results.json", {"config": config, "cells": records})
    cols = ["label", "model", "options", "precision", "target", "status", "size_bytes", "convert_seconds", "accuracy",
            "eval_top1", "p50_ms", "latency_source", "coverage_xnnpack", "coverage_gpu", "coverage_edgetpu", "profile_node", "error"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in records:
        w.writerow([r.get("label"), r.get("model"), json.dumps(r.get("options")), r.get("precision"), r.get("target"), r.get("status"),
                    r.get("size_bytes"), r.get("convert_seconds"), accuracy_of(r), r.get("eval_top1"), p50_of(r), r.get("latency_source"),
                    *((r.get("coverage") or {}).get(d) for d in ("xnnpack", "gpu", "edgetpu")), r.get("node"), r.get("error")])
    atomic_write(folder / "results.csv", buf.getvalue().encode())
    plots = pareto_plots(records, folder)
    html = render_html(records, plots, config)
    atomic_write(folder / "index.html", html.encode())
    return {"json": str(folder / "results.json"), "csv": str(folder / "results.csv"), "html": str(folder / "index.html"), "plots": plots}


def accuracy_of(r: dict):
    """The accuracy a cell is ranked by: real top-1 on --eval, else agreement with the float model."""
    if r.get("eval_top1") is not None:
        return r["eval_top1"]
    acc = r.get("accuracy_vs_float") or {}
    if "top1_agreement" in acc:
        return acc["top1_agreement"]
    if "cosine_mean" in acc:
        return acc["cosine_mean"]
    return 1.0 if r.get("status") == "ok" and r.get("precision") == "fp32" else None


def p50_of(r: dict):
    lat = r.get("latency_ms") or {}
    return lat.get("p50")


def pareto_front(points):
    """Indices of the points no other point beats on both latency (lower) and accuracy (higher)."""
    front = []
    for i, (lat, acc) in enumerate(points):
        if not any((l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for j, (l2, a2) in enumerate(points) if j != i):
            front.append(i)
    return front


def pareto_plots(records, folder: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    for target in sorted({r["target"] for r in records}):
        pts = [(p50_of(r), accuracy_of(r), r) for r in records if r["target"] == target and r.get("status") == "ok"
               and p50_of(r) is not None and accuracy_of(r) is not None]
        if not pts:
            continue
        front = set(pareto_front([(p, a) for p, a, _ in pts]))
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, (p, a, r) in enumerate(pts):
            ax.scatter(p, a, s=40, color="tab:red" if i in front else "tab:gray", zorder=3)
            label = " ".join([r["model"], *(f"{k}={v}" for k, v in sorted(r["options"].items())), r["precision"]])
            ax.annotate(label, (p, a), fontsize=7, xytext=(3, 3), textcoords="offset points")
        fr = sorted((pts[i][0], pts[i][1]) for i in front)
        ax.plot([p for p, _ in fr], [a for _, a in fr], color="tab:red", lw=1, zorder=2, label="Pareto frontier")
        src = {r.get("latency_source") for _, _, r in pts}
        ax.set_xlabel("p50 latency (ms)" + (" — predicted" if src == {"predicted"} else ""))
        ax.set_ylabel("accuracy (top-1 on --eval, else agreement with float)")
        ax.set_title(f"{target}: accuracy against latency")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        out = folder / f"pareto-{target}.png"
        fig.tight_layout()
        fig.savefig(out, dpi=110)
        plt.close(fig)
        plots[target] = str(out)
    return plots


def render_html(records, plots, config) -> str:
    import html

    ok = sum(r.get("status") == "ok" for r in records)
    rows = []
    for r in sorted(records, key=lambda r: (r["target"], p50_of(r) or 1e9)):
        lat = p50_of(r)
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            r["label"], r.get("status"), f"{(r.get('size_bytes') or 0) / 1e6:.2f}" if r.get("size_bytes") else "",
            "" if accuracy_of(r) is None else f"{accuracy_of(r):.4f}", "" if lat is None else f"{lat:.2f}",
            r.get("latency_source", ""), r.get("convert_seconds", ""), r.get("error", ""))) + "</tr>")
    imgs = "".join(f'<h2>{html.escape(t)}</h2><img src="{Path(p).name}" alt="Pareto plot for {html.escape(t)}">' for t, p in plots.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>edgecnn benchmark</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}</style>
</head><body><h1>edgecnn benchmark</h1><p>{ok} of {len(records)} cells finished; latency "predicted" where no node of that target measured it.
edgecnn {html.escape(__version__)}; settings {html.escape(json.dumps(config.get('settings', {})))}</p>{imgs}
<h2>cells</h2><table><tr><th>cell</th><th>status</th><th>MB</th><th>accuracy</th><th>p50 ms</th><th>latency</th><th>convert s</th><th>error</th></tr>
{''.join(rows)}</table></body></html>"""


def run_benchmark(models, sets, precisions, targets, output, calibration=None, eval_dir=None, samples: int = 64, runs: int = 30,
                  ray_address: str | None = None, progress: bool = False) -> dict:
    if eval_dir and not Path(eval_dir).is_dir():
        raise InputError(f"--eval {eval_dir} is not a folder of class subfolders")
    if calibration and calibration != "bundled" and not calibration.startswith("bundled:") and not Path(calibration).exists():
        raise InputError(f"--calibration {calibration} not found")
    settings = {"calibration": calibration or "bundled", "eval": str(Path(eval_dir).resolve()) if eval_dir else None,
                "samples": samples, "runs": runs, "seed": 0}
    cells = plan_cells(models, parse_sets(sets) if sets and isinstance(sets[0], str) else (sets or []), precisions, targets, settings)
    if ray_address:  # the cluster answers before anything is written
        from edgecnn.workstation.benchmark_ray import connect

        connect(ray_address)
    results = Results(output)
    t0 = time.perf_counter()
    records = run_ray(cells, results, runs, ray_address, progress) if ray_address else run_local(cells, results, runs, progress)
    config = {"models": models, "sets": sets, "precisions": precisions, "targets": targets, "settings": settings,
              "mode": "ray" if ray_address else "local", "seconds": round(time.perf_counter() - t0, 2)}
    files = write_outputs(records, results.folder, config)
    failed = [r for r in records if r["status"] == "failed"]
    return {"cells": len(records), "ok": sum(r["status"] == "ok" for r in records), "failed": len(failed),
            "first_error": f"{failed[0]['label']}: {failed[0].get('error')}" if failed else None,
            "cached": sum(bool(r.get("cached")) for r in records), "seconds": config["seconds"], "mode": config["mode"], **files}


