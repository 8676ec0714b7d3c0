"""Conversion time, size and latency of each precision for mobilenet_v2 and efficientnet_b0.

    python benchmarks/convert.py [--models mobilenet_v2,efficientnet_b0] [--input-size 224] [--threads 2]

Latency is the device interpreter (LiteRT) on this machine, each precision measured beside the fp32
model of the same run. Writes benchmarks/results/convert.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import progress, save, table  # noqa: E402

PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int16x8")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mobilenet_v2,efficientnet_b0")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--samples", type=int, default=32)
    args = ap.parse_args(argv)

    from edgecnn.converters.convert import ConvertOptions, convert
    from edgecnn.device.profiling import summarize, time_invocations
    from edgecnn.device.runtime import Model

    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            paths = {}
            for precision in PRECISIONS:
                progress(f"{name} {precision} ...")
                out = Path(tmp) / f"{name}_{precision}.tflite"
                t0 = time.perf_counter()
                try:
                    rep = convert(
                        name,
                        ConvertOptions(
                            precision=precision,
                            output=str(out),
                            samples=args.samples,
                            debug_layers=False,
                            measure_latency=False,
                            builder_options={"input_size": args.input_size},
                        ),
                    )
                except Exception as exc:  # noqa: BLE001 - record what failed and why
                    paths[precision] = exc
                    continue
                paths[precision] = (out, rep, time.perf_counter() - t0)
            fp32_p50 = None
            for precision, item in paths.items():
                if isinstance(item, Exception):
                    results.append({"model": name, "precision": precision, "error": str(item)})
                    rows.append([name, precision, "-", "-", "-", "-", str(item)[:60], "-"])
                    continue
                out, rep, _wall = item
                m = Model(out, threads=args.threads)
                from edgecnn.device.profiling import sample_input

                _, times = time_invocations(m, sample_input(m), runs=args.runs, warmup=3)
                p50 = summarize(times)["p50"]
                if precision == "fp32":
                    fp32_p50 = p50
                r = {
                    "model": name,
                    "precision": precision,
                    "convert_seconds": round(rep["seconds"], 2),
                    "size_bytes": rep["size_bytes"],
                    "size_vs_fp32": rep["size_ratio"],
                    "latency_p50_ms": p50,
                    "latency_vs_fp32": round(p50 / fp32_p50, 3) if fp32_p50 else None,
                    "xnnpack_partitions": rep["coverage"]["xnnpack"]["partitions"],
                }
                results.append(r)
                rows.append(
                    [
                        name,
                        precision,
                        r["convert_seconds"],
                        f"{rep['size_bytes'] / 1e6:.2f} MB",
                        r["size_vs_fp32"],
                        p50,
                        f"{r['latency_vs_fp32']:.2f}x" if r["latency_vs_fp32"] else "-",
                        r["xnnpack_partitions"],
                    ]
                )
                del m
    table(
        f"conversion at {args.input_size}x{args.input_size}, latency with {args.threads} threads (LiteRT)",
        ["model", "precision", "convert s", "size", "size/fp32", "p50 ms", "p50/fp32", "XNNPACK partitions"],
        rows,
    )
    path = save("convert", {"input_size": args.input_size, "threads": args.threads, "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
