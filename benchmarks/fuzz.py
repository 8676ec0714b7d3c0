"""The model loader against 10,000 damaged model files: how many end in a one-line error, how many
still load, and how many kill the host process (goal: 0) or end in an internal error (goal: 0).

    python benchmarks/fuzz.py [--n 10000] [--seed 0]

The corpus (tests/fuzzing.py) mutates three real models carried by packages: BlazeFace (float
detector), EfficientNet-Lite0 (uint8 classifier) and DeepLab v3 (float segmenter), one mutation
class after another (operator/subgraph indices, opcodes, tensor types, shapes, buffer indices,
quantization, buffer lengths, operator options, byte flips, truncation). Each file goes the way a
user's does: ``Model(path)`` (validate, test-load unseen files in a child process), then one
inference. A worker process runs the corpus; if it dies by a signal, the file it was on is counted
as a crash and the next worker carries on after it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import progress, save, table  # noqa: E402


def worker(start: int, n: int, seed: int, out: Path, folder: Path) -> None:
    from fuzzing import corpus, real_models, zeros_input

    from edgecnn.core.errors import EdgecnnError
    from edgecnn.device.runtime import Model

    with open(out, "a") as log:
        for i, name, cls, data in corpus(real_models(), n, seed):
            if i < start:
                continue
            path = folder / f"m{i}.tflite"
            path.write_bytes(data)
            log.write(json.dumps({"i": i, "start": True}) + "\n")
            log.flush()
            t0 = time.perf_counter()
            try:
                m = Model(path, threads=1, warn=lambda _m: None)
                m.run(zeros_input(m).astype("float32") if m.inputs[0]["dtype"].__name__ == "float32" else zeros_input(m))
                outcome, reason = "loaded and ran", ""
            except EdgecnnError as exc:
                msg = str(exc)
                outcome = (
                    "rejected by the validator"
                    if "corrupt" in msg or "well-formed" in msg or "truncated" in msg or "not a TFLite" in msg or "too small" in msg
                    else "rejected by the test load"
                    if "test load" in msg or "needs a runtime" in msg
                    else "refused by the runtime"
                )
                reason = msg[:160]
            except Exception as exc:  # noqa: BLE001 - what the goal says must not happen
                outcome, reason = "internal error", f"{type(exc).__name__}: {str(exc)[:160]}"
            log.write(
                json.dumps({"i": i, "model": name, "class": cls, "outcome": outcome, "reason": reason, "ms": round((time.perf_counter() - t0) * 1e3, 2)}) + "\n"
            )
            log.flush()
            path.unlink()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.start, args.n, args.seed, Path(args.log), Path(args.folder))
        return
    with tempfile.TemporaryDirectory() as tmp:
        log, folder = Path(tmp) / "log.jsonl", Path(tmp) / "files"
        folder.mkdir()
        env = {**os.environ, "EDGECNN_HOME": str(Path(tmp) / "home")}  # a fresh verdict cache
        start, crashes, t0 = 0, [], time.perf_counter()
        while True:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    "--n",
                    str(args.n),
                    "--seed",
                    str(args.seed),
                    "--start",
                    str(start),
                    "--log",
                    str(log),
                    "--folder",
                    str(folder),
                ],
                env=env,
                stderr=open(Path(tmp) / "worker.err", "w"),
            )
            while proc.poll() is None:
                time.sleep(2)
                done = sum(1 for ln in log.read_text().splitlines() if '"outcome"' in ln) if log.exists() else 0
                progress(f"{done + len(crashes)}/{args.n} files, {len(crashes)} host crashes")
            rows = [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []
            last = max((r["i"] for r in rows), default=-1)
            finished = {r["i"] for r in rows if "outcome" in r}
            if proc.returncode == 0 or last + 1 >= args.n and last in finished:
                break
            if last < start:  # died before its first file: a broken setup, not a finding
                raise SystemExit("the fuzz worker failed to start: " + (Path(tmp) / "worker.err").read_text()[-2000:])
            if last not in finished:  # the worker died on this file
                crashes.append({"i": last, "signal": -proc.returncode if proc.returncode < 0 else None, "exit": proc.returncode})
            start = last + 1
        rows = [json.loads(ln) for ln in log.read_text().splitlines() if '"outcome"' in ln]
        seconds = time.perf_counter() - t0
    counts = Counter(r["outcome"] for r in rows)
    counts["host process killed"] = len(crashes)
    by_class = {}
    for r in rows:
        by_class.setdefault(r["class"], Counter())[r["outcome"]] += 1
    table(
        f"{args.n} damaged model files (seed {args.seed}) through Model(path) + one inference, {seconds:.0f} s",
        ["outcome", "files"],
        [[k, v] for k, v in counts.most_common()],
    )
    internal = [r for r in rows if r["outcome"] == "internal error"]
    for r in internal[:10]:
        print("internal error:", r["model"], r["class"], r["reason"])
    out = save(
        "fuzz",
        {
            "n": args.n,
            "seed": args.seed,
            "seconds": round(seconds, 1),
            "outcomes": dict(counts),
            "by_class": {k: dict(v) for k, v in by_class.items()},
            "crashes": crashes,
            "internal_errors": internal[:50],
            "goal": "0 host processes killed, 0 internal errors",
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
