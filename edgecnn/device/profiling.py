"""Latency profiling in the vocabulary of TFLite's ``benchmark_model``: warm-up runs, then
count/min/max/mean/std and percentiles over the counted runs. Device-side: no TensorFlow.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from edgecnn.core._progress import progress as progress_bar
from edgecnn.core.errors import InputError


def summarize(times_ms) -> dict:
    t = np.asarray(times_ms, dtype=np.float64)
    if t.size == 0:
        return {}
    return {
        "count": int(t.size),
        "p50": round(float(np.percentile(t, 50)), 4),
        "p90": round(float(np.percentile(t, 90)), 4),
        "p99": round(float(np.percentile(t, 99)), 4),
        "min": round(float(t.min()), 4),
        "max": round(float(t.max()), 4),
        "mean": round(float(t.mean()), 4),
        "std": round(float(t.std()), 4),
    }


def sample_input(model) -> np.ndarray:
    """A deterministic realistic input: a real bundled photo through the model's preprocessing when
    it has one, else uniform noise in the input's range."""
    shape = model.input_shape[1:]
    if model.preprocess is not None:
        img = _test_image()
        if img is not None:
            return model.prepare(img)
    rng = np.random.default_rng(0)
    return rng.random(shape, dtype=np.float32)


def _test_image():
    """A real photo that ships inside the package (also on a bare device install)."""
    import cv2

    return cv2.imread(str(Path(__file__).resolve().parents[1] / "data" / "faces" / "obama.jpg"))


def time_invocations(model, x, runs: int | None = None, seconds: float | None = None, warmup: int = 3):
    """(first_ms, [counted ms]) for ``model.invoke`` on a fixed input, benchmark_model style."""
    model.set_input(x)
    t0 = time.perf_counter()
    model.invoke()
    first = (time.perf_counter() - t0) * 1e3
    for _ in range(max(0, warmup)):
        model.invoke()
    times = []
    deadline = time.perf_counter() + seconds if seconds else None
    target_runs = runs if runs else (None if seconds else 50)
    while True:
        t = time.perf_counter()
        model.invoke()
        times.append((time.perf_counter() - t) * 1e3)
        if target_runs is not None and len(times) >= target_runs:
            break
        if deadline is not None and time.perf_counter() >= deadline and len(times) >= 3:
            break
    return first, times


def peak_rss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if platform.system() == "Darwin" else r * 1024)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def machine_info() -> dict:
    """CPU model, cores; on a Raspberry Pi the board model, SoC temperature and throttling flags."""
    info = {"system": platform.system(), "machine": platform.machine(), "python": platform.python_version(), "cores": os.cpu_count()}
    cpuinfo = _read("/proc/cpuinfo") or ""
    model = None
    for line in cpuinfo.splitlines():
        key, _, val = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and val.strip():
            model = val.strip()
            if key.strip() == "model name":
                break
    info["cpu"] = model or platform.processor() or None
    board = _read("/proc/device-tree/model")
    if board:
        info["board"] = board
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    if temp and temp.lstrip("-").isdigit():
        info["temperature_c"] = int(temp) / 1000.0
    throttled = _read("/sys/devices/platform/soc/soc:firmware/get_throttled")
    if throttled is None:
        import shutil
        import subprocess

        if shutil.which("vcgencmd"):
            try:
                out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=2).stdout
                throttled = out.strip().partition("=")[2] or None
            except (OSError, subprocess.SubprocessError):
                throttled = None
    if throttled:
        try:
            flags = int(throttled, 16)
            info["throttled"] = {
                "raw": hex(flags),
                "under_voltage_now": bool(flags & 0x1),
                "throttled_now": bool(flags & 0x4),
                "soft_temp_limit_now": bool(flags & 0x8),
                "throttled_since_boot": bool(flags & 0x40000),
            }
        except ValueError:
            pass
    return info


def parse_threads(spec) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]; zero, negatives and junk are :class:`InputError`."""
    if spec is None:
        return []
    if isinstance(spec, int):
        items = [spec]
    else:
        items = []
        for part in str(spec).split(","):
            part = part.strip()
            if not part.isdigit() or int(part) < 1 or int(part) > 256:
                raise InputError(f"--threads takes positive integers separated by commas (e.g. 1,2,4), got {spec!r}")
            items.append(int(part))
    if not items or any(i < 1 for i in items):
        raise InputError(f"--threads takes positive integers, got {spec!r}")
    return sorted(set(items), key=items.index)


def _timed(model, load_ms: float, runs, seconds, warmup: int) -> dict:
    """One thread count's row: load, first inference, the latency distribution, throughput."""
    first, times = time_invocations(model, sample_input(model), runs, seconds, warmup)
    lat = summarize(times)
    return {
        "threads": model.threads,
        "load_ms": round(load_ms, 3),
        "first_inference_ms": round(first, 3),
        "latency_ms": lat,
        "throughput_fps": round(1000.0 / lat["mean"], 2) if lat["mean"] > 0 else None,
    }


def profile_model(path, target=None, threads=None, runs=None, seconds=None, warmup: int = 3, strict=False, progress=False, warn=None) -> dict:
    """Everything ``edgecnn profile`` reports for one model file (JSON-ready)."""
    from edgecnn.device.runtime import Model

    if runs is not None and (not isinstance(runs, int) or runs < 1):
        raise InputError(f"--runs must be a positive integer, got {runs!r}")
    if seconds is not None and not (seconds > 0):
        raise InputError(f"--seconds must be positive, got {seconds!r}")
    if warmup < 0:
        raise InputError(f"--warmup must be >= 0, got {warmup}")
    thread_list = parse_threads(threads) or [None]
    results = []
    base = file = None
    with progress_bar("profiling", len(thread_list), progress) as tick:
        for n in thread_list:
            tick(description=f"{n or 'default'} thread(s)")
            t0 = time.perf_counter()
            model = Model(path, target=target, threads=n, strict=strict, warn=warn if base is None else (lambda _m: None))
            results.append(_timed(model, (time.perf_counter() - t0) * 1e3, runs, seconds, warmup))
            if base is None:
                base, file = model.describe(), model.file
            del model
            tick(advance=1)
    main = results[0]
    report = {
        "model": str(path),
        "size_bytes": file.size_bytes,
        "runtime": base["runtime"],
        "target": base["target"],
        "delegate": base["delegate"],
        "inputs": base["inputs"],
        "outputs": base["outputs"],
        "threads": main["threads"],
        "load_ms": main["load_ms"],
        "first_inference_ms": main["first_inference_ms"],
        "warmup": warmup,
        "latency_ms": main["latency_ms"],
        "throughput_fps": main["throughput_fps"],
        "thread_sweep": results if len(results) > 1 else [],
        "peak_rss_bytes": peak_rss_bytes(),
        "ops": file.op_histogram(),
        "per_op_ms": None,
        "per_op_note": "the LiteRT Python interpreter exposes no per-op timings; use TFLite's benchmark_model --enable_op_profiling=true",
        "machine": machine_info(),
        "label": Path(str(path)).stem,
    }
    if len(results) > 1:
        one = next((r for r in results if r["threads"] == 1), None)
        two = next((r for r in results if r["threads"] == 2), None)
        if one and two:
            report["scaling_1_to_2"] = round(one["latency_ms"]["p50"] / two["latency_ms"]["p50"], 3)
    return report


def predict_latency(path, target_name: str) -> dict:
    """Estimate latency on a device you do not have from the model's MACs and compute class, with the
    latency model fitted to the target's published references (:mod:`edgecnn.targets.predict`), and
    the fit's leave-one-out error as the stated uncertainty."""
    from edgecnn.core import tflite_file
    from edgecnn.targets import load_target
    from edgecnn.targets.edgetpu import check
    from edgecnn.targets.predict import predict_ms, summary

    target = load_target(target_name)
    fitted = summary(target)
    if fitted is None:
        raise InputError(f"target {target.name!r} has no [[predict.reference]] results in its profile; targets with them: rpi4, rpi5, coral")
    info = tflite_file.read(path)
    macs = info.macs()
    cls = info.compute_class()
    threads = target.resolved_threads() if target.delegate != "edgetpu" else 1
    est = predict_ms(fitted, macs, cls, threads)
    loo = fitted["leave_one_out"]
    unc = loo["max_abs_error"] or 0.5
    out = {
        "target": target.name,
        "model": str(path),
        "macs": macs,
        "compute": cls,
        "threads": threads,
        "estimate_ms": round(est, 3),
        "range_ms": [round(est * max(0.05, 1 - unc), 3), round(est * (1 + unc), 3)],
        "basis": (
            f"ms = MACs x {fitted['k_ms_per_gmac'].get(cls, next(iter(fitted['k_ms_per_gmac'].values()))):.1f} ms/GMAC"
            f" / threads^{fitted['thread_exponent'].get(cls, 0.0)} + {fitted['overhead_ms']:.2f} ms,"
            f" fitted to {len(fitted['references'])} published results"
        ),
        "leave_one_out_error": {"mean": loo["mean_abs_error"], "max": loo["max_abs_error"]},
        "sources": sorted({r["source"] for r in fitted["references"]}),
        "uncertainty": "the range is the fit's largest leave-one-out error; a MAC-proportional model ignores memory traffic, op mix and thermal throttling",
    }
    if cls not in fitted["k_ms_per_gmac"]:
        out["warning"] = f"{target.name}'s references have no {cls} results: the {fitted['classes'][0]} rate was used"
    if target.delegate == "edgetpu":
        chk = check(info)
        out["edgetpu_check"] = chk
        mem = chk["parameter_memory"]
        if not mem["fits_on_chip"]:
            out["estimate_ms"] = round(est + mem["stream_ms_per_inference"], 3)
            out["range_ms"] = [round(x + mem["stream_ms_per_inference"], 3) for x in out["range_ms"]]
            out["streaming"] = chk["notes"][0]
        if not chk["compatible"]:
            out["warning"] = (
                "the model does not map fully to the Edge TPU: " + "; ".join(chk["problems"]) + " — ops on the host CPU make it far slower than this estimate"
            )
    return out
