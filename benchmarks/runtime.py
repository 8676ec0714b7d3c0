"""Overhead of edgecnn's runtime over the bare interpreter, measured in one run on the same model.

    python benchmarks/runtime.py [--model M.tflite] [--threads 2] [--runs 300]

Compares p50 of (a) a bare ai_edge_litert set_tensor/invoke/get_tensor loop, (b) Model.predict on a
prepared tensor, (c) the invoke loop `edgecnn profile` times; goal: (b)/(a) and (c)/(a) <= 1.05.
Also the 1 -> 2 thread scaling. Rounds alternate so drift hits all three alike.
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
        out = save("runtime", {"model": path if args.model else "mobilenet_v2 a0.35 160 int8", "results": results, "scaling_1_to_n": round(scaling, 3),
                               "goal": "Model.predict and profile p50 within 1.05x of bare"})
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
