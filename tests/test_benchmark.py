"""``edgecnn benchmark``: the matrix on this machine (cached, resumable, failures recorded) and on a
real local Ray cluster: a head with the ``convert`` resource and a worker that declares ``rpi5``."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.tf]

# 2 models x 2 precisions x 2 targets at input 32, and LeNet-5 at input 7 (too small: its cells fail)
MATRIX = [
    "--models",
    "lenet5,mobilenet_v1",
    "--set",
    "alpha=0.25",
    "--set",
    "input_size=32,7",
    "--precisions",
    "fp32,int8",
    "--targets",
    "cpu,rpi5",
    "--samples",
    "16",
    "--runs",
    "5",
]


def _bench(out, *extra, env=None):
    proc = run_cli("benchmark", *MATRIX, "--output", out, "--json", *extra, timeout=1200, env=env)
    # the input-7 cells fail: a matrix with holes exits 1 and says so in one line, after the results
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "cells failed (first: " in last and "input_size=7]" in last, proc.stderr
    return json.loads(proc.stdout), {c["label"]: c for c in json.loads((Path(out) / "results.json").read_text())["cells"]}


def _check_matrix(cells):
    failed = {k for k, c in cells.items() if c["status"] == "failed"}
    assert failed >= {k for k in cells if k.startswith("lenet5[input_size=7]")} and len(failed) >= 4
    assert all("cannot build 'lenet5'" in cells[k]["error"] for k in failed if k.startswith("lenet5"))
    ok32 = [c for k, c in cells.items() if "input_size=32" in k]
    assert len(ok32) == 8 and all(c["status"] == "ok" for c in ok32)
    for c in ok32:
        assert c["size_bytes"] > 0 and c["convert_seconds"] > 0 and set(c["coverage"]) == {"xnnpack", "gpu", "edgetpu"}
        assert c["latency_ms"]["p50"] > 0
    return ok32


def test_local_matrix_resumes_from_its_cache_and_writes_reports(tmp_path):
    out = tmp_path / "results"
    summary, cells = _bench(out)
    assert summary["cells"] == 16 and summary["cached"] == 0 and summary["mode"] == "local"
    ok32 = _check_matrix(cells)
    assert {c["latency_source"] for c in ok32 if c["target"] == "cpu"} == {"measured"}
    assert {c["latency_source"] for c in ok32 if c["target"] == "rpi5"} == {"predicted"}  # no Pi here: said so
    assert all("predicted" in c["latency_note"] for c in ok32 if c["target"] == "rpi5")
    int8 = [c for c in ok32 if c["precision"] == "int8"]
    assert all(c["accuracy_vs_float"] and c["size_bytes"] < 0.5 * c["float_size_bytes"] for c in int8)
    for f in ("results.csv", "results.json", "index.html", "pareto-cpu.png", "pareto-rpi5.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 200, f
    assert (out / "pareto-cpu.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "index.html").read_text()
    assert "lenet5[input_size=7]" in html and "pareto-cpu.png" in html
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 17 and rows[0].startswith("label,model,options,precision,target,status")
    # a second run resumes: every cell from the cache, the same answers
    again, cells2 = _bench(out)
    n_ok = sum(c["status"] == "ok" for c in cells.values())
    assert again["cached"] == n_ok  # failed cells are tried again (a full disk is no verdict on a cell)
    assert {k for k, c in cells2.items() if c["status"] == "failed"} == {k for k, c in cells.items() if c["status"] == "failed"}
    assert {k: c["size_bytes"] for k, c in cells.items() if c["status"] == "ok"} == {k: c["size_bytes"] for k, c in cells2.items() if c["status"] == "ok"}
    # a cache entry damaged on disk is run again, not trusted
    victim = next((out / "cells").iterdir())
    victim.write_text("{not json")
    third, _ = _bench(out)
    assert third["cached"] == n_ok - 1


def test_benchmark_bad_input(tmp_path):
    assert_one_line_error(run_cli("benchmark", "--models", "lenet5", "--set", "depth=1,2", "--output", tmp_path / "o"), 2, "none of lenet5")
    assert_one_line_error(run_cli("benchmark", "--models", "lenet5", "--precisions", "int4", "--output", tmp_path / "o"), 2, "unknown precision")
    assert_one_line_error(run_cli("benchmark", "--models", "lenet5", "--targets", "pi9", "--output", tmp_path / "o"), 2, "unknown target")
    assert_one_line_error(run_cli("benchmark", "--models", "nosuchnet", "--output", tmp_path / "o"), 2)
    if importlib.util.find_spec("ray"):  # an address nobody answers: one line, not Ray's endless retries
        assert_one_line_error(
            run_cli("benchmark", "--models", "lenet5", "--output", tmp_path / "o", "--ray", "127.0.0.1:1", timeout=60), 2, "no Ray head answers"
        )
        assert_one_line_error(run_cli("benchmark", "--models", "lenet5", "--output", tmp_path / "o", "--ray", "nonsense"), 2, "HOST:PORT")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("keep me")
    assert_one_line_error(run_cli("benchmark", "--models", "lenet5", "--output", mine), 2, "not empty")
    assert (mine / "thesis.txt").read_text() == "keep me" and sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]
    assert not (tmp_path / "o").exists()


def _ray_env(tmp_path, **extra):
    """Ray >= 2.52 keeps its token in ~/.ray/auth_token and decides from it whether a new head needs one:
    every Ray process in these tests gets its own HOME, so the user's ~/.ray neither leaks in nor changes."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", **extra}


@pytest.fixture
def ray_cluster(tmp_path):
    """A real two-node Ray cluster on this machine, as the README sets up a farm: token authentication,
    a head (convert, cpu) and a worker declaring rpi5. The first profiling task's worker process dies
    (``EDGECNN_BENCH_FAULT``): Ray must retry it. Yields (address, the env that holds the token)."""
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    env = _ray_env(tmp_path, RAY_AUTH_MODE="token", EDGECNN_BENCH_FAULT=str(tmp_path / "worker-died"))
    token = subprocess.run([str(ray_bin), "get-auth-token", "--generate"], capture_output=True, text=True, env=env, timeout=120)
    assert token.returncode == 0 and (tmp_path / "home" / ".ray" / "auth_token").is_file(), token.stderr
    port = "6397"
    subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=120)
    head = subprocess.run(
        [
            str(ray_bin),
            "start",
            "--head",
            "--port",
            port,
            "--num-cpus",
            "2",
            "--resources",
            '{"convert": 1, "cpu": 1}',
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert head.returncode == 0, head.stderr[-2000:]
    worker = subprocess.run(
        [str(ray_bin), "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--resources", '{"rpi5": 1}', "--disable-usage-stats"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]
    yield f"127.0.0.1:{port}", env
    subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_ray_matrix_profiles_rpi5_cells_on_the_rpi5_node_and_matches_local(ray_cluster, tmp_path):
    address, env = ray_cluster
    # a machine without the head's token is refused in one line (not half a minute of Ray's retries)
    (tmp_path / "stranger").mkdir()
    stranger = _ray_env(tmp_path / "stranger")  # its own HOME, no token, RAY_AUTH_MODE unset
    assert_one_line_error(
        run_cli("benchmark", *MATRIX, "--output", tmp_path / "no", "--ray", address, env=stranger, timeout=120), 2, "copy the head's ~/.ray/auth_token"
    )
    wrong = {**stranger, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    assert_one_line_error(run_cli("benchmark", *MATRIX, "--output", tmp_path / "no", "--ray", address, env=wrong, timeout=120), 2, "not the head's")
    assert not (tmp_path / "no").exists()
    summary, cells = _bench(tmp_path / "ray", "--ray", address, env=env)
    assert summary["mode"] == "ray" and summary["cells"] == 16
    assert (tmp_path / "worker-died").is_file()  # a profiling worker was lost mid-run ...
    ok32 = _check_matrix(cells)  # ... and its cell was retried: every valid cell still finished
    nodes = subprocess.run(
        [
            sys.executable,
            "-c",
            f"""
import json, ray
ray.init(address="{address}", logging_level="ERROR")
print(json.dumps({{n["NodeID"]: sorted(k for k in n["Resources"] if k in ("convert", "rpi5", "cpu")) for n in ray.nodes() if n["Alive"]}}))
""",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    by_node = json.loads(nodes.stdout.strip().splitlines()[-1])
    rpi5_node = next(n for n, r in by_node.items() if r == ["rpi5"])
    head = next(n for n, r in by_node.items() if "convert" in r)
    for c in ok32:
        assert c["latency_source"] == "measured" and c["convert_node"] == head
        assert c["node"] == (rpi5_node if c["target"] == "rpi5" else head), c["label"]
    # the same matrix on this machine alone: the same sizes and accuracies (seeded weights, same calibration)
    _, local = _bench(tmp_path / "local")
    for k, c in cells.items():
        if c["status"] == "ok":
            assert local[k]["size_bytes"] == c["size_bytes"], k
            assert local[k]["accuracy_vs_float"] == pytest.approx(c["accuracy_vs_float"], abs=1e-6) if c["accuracy_vs_float"] else True
    # and the ray run resumes from its own cache
    again, _ = _bench(tmp_path / "ray", "--ray", address, env=env)
    assert again["cached"] == sum(c["status"] == "ok" for c in cells.values())


def test_ray_auto_starts_a_local_cluster_when_none_runs(tmp_path):
    """--ray auto with no cluster about: a local one with this machine as convert and cpu, for this run."""
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    env = _ray_env(tmp_path)  # a new local cluster writes a token into ~/.ray: not the user's
    subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, timeout=120, env=env)
    proc = run_cli(
        "benchmark",
        "--models",
        "lenet5",
        "--set",
        "input_size=32",
        "--precisions",
        "fp32",
        "--targets",
        "cpu",
        "--samples",
        "8",
        "--runs",
        "3",
        "--output",
        tmp_path / "auto",
        "--ray",
        "auto",
        "--json",
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["mode"] == "ray" and r["ok"] == 1
    (cell,) = json.loads((tmp_path / "auto" / "results.json").read_text())["cells"]
    assert cell["latency_source"] == "measured" and cell["node"] == cell["convert_node"]


@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stopped_benchmark_keeps_its_finished_cells_says_how_to_resume_and_resumes(tmp_path, sig, code, sigint_reaches_python):
    """A signal once the first cell is cached: the run stops between cells (it ran every cell before), exits
    with the signal's code in one line naming the way on, and the same command then runs only the rest."""
    import signal
    import time

    out = tmp_path / "r"
    args = ["benchmark", "--models", "lenet5", "--precisions", "fp32,fp16,dynamic", "--runs", "3", "--output", str(out), "--json"]
    p = subprocess.Popen([sys.executable, "-m", "edgecnn.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "cells").is_dir() or not any((out / "cells").iterdir()):
        assert p.poll() is None and time.monotonic() < deadline, "the run ended before its first cell was cached"
        time.sleep(0.05)
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=300)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("edgecnn: note:")]
    assert p.returncode == code and "run the same command again to resume" in lines[-1] and "Traceback" not in err, err
    done = len(list((out / "cells").iterdir()))
    assert 1 <= done < 3
    proc = run_cli(*args)
    r = json.loads(proc.stdout)
    assert proc.returncode == 0 and r["cached"] == done and r["ok"] == 3, proc.stderr
