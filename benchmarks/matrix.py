"""``edgecnn benchmark`` against running the same cells by hand, and Ray against local mode.

    python benchmarks/matrix.py [--quick]

Measured in one run on this machine, wall-clock seconds for the same cells (fresh output folders,
no cache):
  by hand      `edgecnn convert` once per conversion, then `edgecnn profile` per cell, in sequence:
               what a user does today
  local        `edgecnn benchmark` (one process)
  ray, 1 node  `edgecnn benchmark --ray ADDRESS` on a one-node local cluster (head: convert, cpu)
  ray, 2 nodes the same with a second worker node that also converts (two conversions at a time)
Goals (issue #14): local within +10% of by hand; Ray on one machine within +20% of local; two
workers faster than serial. Writes results/matrix.json.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import progress, save, table  # noqa: E402

MODELS = [
    ("lenet5", {"input_size": 32}),
    ("mobilenet_v1", {"alpha": 0.25, "input_size": 64}),
    ("mobilenet_v2", {"alpha": 0.35, "input_size": 64}),
    ("squeezenet", {"input_size": 64}),
]


def cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "edgecnn.cli", *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))}: {proc.stderr.strip()[-400:]}")
    return proc


def ray_bin():
    return str(Path(sys.executable).with_name("ray"))


def start_cluster(workers: int, port: int = 6398):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([ray_bin(), "stop", "--force"], capture_output=True, env=env)
    subprocess.run(
        [
            ray_bin(),
            "start",
            "--head",
            "--port",
            str(port),
            "--num-cpus",
            "1",
            "--resources",
            '{"convert": 1, "cpu": 1}',
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    for _ in range(workers - 1):
        subprocess.run(
            [ray_bin(), "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--resources", '{"convert": 1}', "--disable-usage-stats"],
            check=True,
            capture_output=True,
            env=env,
        )
    return f"127.0.0.1:{port}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two models instead of four")
    args = ap.parse_args()
    models = MODELS[:2] if args.quick else MODELS
    precisions, samples, runs = ["fp32", "int8"], 16, 20
    work = Path(tempfile.mkdtemp(prefix="edgecnn-matrix-"))
    rows, res = [], {}

    progress("by hand: edgecnn convert + edgecnn profile per cell")
    t0 = time.perf_counter()
    for m, opts in models:
        knobs = [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]
        for p in precisions:
            out = work / f"hand_{m}_{p}.tflite"
            cli("convert", m, "--precision", p, "--samples", samples, "--output", out, "--no-layers", "--json", *knobs)
            cli("profile", out, "--runs", runs, "--json")
    res["by hand"] = time.perf_counter() - t0

    keys = sorted({k for _, o in models for k in o})
    sets = sum([["--set", f"{k}={','.join(map(str, sorted({o[k] for _, o in models if k in o}, key=str)))}"] for k in keys], [])
    # the whole matrix in one command: every model with every value of its options, every precision
    whole = ("benchmark", "--models", ",".join(m for m, _ in models), *sets, "--precisions", ",".join(precisions), "--targets", "cpu")
    whole += ("--samples", samples, "--runs", runs)

    def bench(tag, *extra):  # the hand cells exactly: one benchmark per model (a matrix is a product)
        t = time.perf_counter()
        for m, opts in models:
            s = sum([["--set", f"{k}={v}"] for k, v in opts.items()], [])
            cli(
                "benchmark",
                "--models",
                m,
                *s,
                "--precisions",
                ",".join(precisions),
                "--targets",
                "cpu",
                "--samples",
                samples,
                "--runs",
                runs,
                "--output",
                work / f"{tag}_{m}",
                "--json",
                *extra,
            )
        return time.perf_counter() - t

    progress("local: edgecnn benchmark")
    res["local"] = bench("local")
    for n in (1, 2):
        progress(f"ray: a {n}-node local cluster")
        addr = start_cluster(n)
        try:
            t = time.perf_counter()
            # one matrix over every model: the cells are independent tasks Ray can spread
            cli(*whole, "--output", work / f"ray{n}", "--ray", addr, "--json")
            res[f"ray, {n} node{'s' if n > 1 else ''} (whole matrix)"] = time.perf_counter() - t
        finally:
            subprocess.run([ray_bin(), "stop", "--force"], capture_output=True)
    progress("local, the same whole matrix")
    t = time.perf_counter()
    cli(*whole, "--output", work / "local_whole", "--json")
    res["local (whole matrix)"] = time.perf_counter() - t
    cells = len(json.loads((work / "local_whole" / "results.json").read_text())["cells"])

    for name, sec in res.items():
        base = res["by hand"] if "whole" not in name else res["local (whole matrix)"]
        rows.append([name, f"{sec:.1f}", f"{sec / base:.2f}x"])
    table(
        f"{len(models)} models x {len(precisions)} precisions on cpu ({os.cpu_count()} cores); the whole matrix has {cells} cells "
        "(every option on every model that has it)",
        ["mode", "seconds", "vs baseline (by hand / local whole)"],
        rows,
    )
    path = save(
        "matrix",
        {
            "models": [m for m, _ in models],
            "precisions": precisions,
            "seconds": res,
            "whole_matrix_cells": cells,
            "goals": {"local_vs_hand_max": 1.10, "ray_1node_vs_local_max": 1.20},
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
