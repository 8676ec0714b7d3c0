"""Write docs/benchmarks.md from benchmarks/results/*.json: what each benchmark measures, against which
baseline, its goal, and its latest results as tables. The page is generated; edit this file or rerun a
benchmark, never the page.

    python benchmarks/report.py [--check]     # --check: exit 1 if the page is not what the results give
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "benchmarks.md"

# name -> (title, what it measures against which baseline, and its goal)
BENCHMARKS = {
    "camera": (
        "The camera loop",
        "FPS of `edgecnn camera` against the loop a user writes by hand with the bare interpreter and "
        "OpenCV (read, resize, invoke, decode, NMS, draw, write), on real clips, with and without writing a video; the "
        "invoke, decode and encode ceilings from the same run beside it. Goal: at least 1.25x the hand-written loop.",
    ),
    "runtime": (
        "The runtime's overhead",
        "`Model.predict` against the bare LiteRT interpreter's set_tensor/invoke/get_tensor on "
        "the same input, rounds alternating. Goals: at most 1.05x on a prepared tensor, 1.10x on a raw frame.",
    ),
    "convert": (
        "Conversion recipes",
        "Size and latency of each precision (fp32, fp16, dynamic range, int8, 16x8) against the fp32 file of the same model, measured on this machine.",
    ),
    "quantization": (
        "int8 you can trust",
        "Real models from other packages at int8, each judged on its own task's metric "
        "(decoded boxes, masks, decisions, top-1) against its fp32 file on held-out inputs calibration never saw, "
        "with the 95% interval's low end; what `--keep-float auto` buys back (percentile activation ranges first, "
        "then layers in float), at what size and speed; the verdict.",
    ),
    "stylize": (
        "Style transfer",
        "The style network's latency per precision and its grey-level error against fp32; onnxruntime "
        "on the original ONNX beside it. Goal: at most 100 ms at 256x256 on 2 threads.",
    ),
    "matrix": ("The benchmark matrix", "A model x precision x target matrix run twice: the second run must come from the cache."),
    "resize": (
        "The anti-aliased resize",
        "What the default area resize buys against a plain linear one, per task (top-1 agreement, "
        "mask IoU, faces found) relative to a full-frame area average, and what it costs against a hand-written loop.",
    ),
    "soak": (
        "Days, not minutes",
        "`edgecnn camera` left running on a live MJPEG-over-HTTP stream that drops every few minutes "
        "(tests/mjpeg.py). Goals: every drop reconnected, RSS within 10 MB after warm-up, a flat thread count, no frame "
        "counted twice, exit 143 on SIGTERM.",
    ),
    "fuzz": ("Malformed models", "Generated damaged .tflite files through the validator and an isolated test load: every one a clean verdict, none a crash."),
    "corpus": (
        "Models from other packages",
        "Real models other packages carry, through edgecnn as a user runs them: see [the corpus](corpus.md) for the whole table.",
    ),
}


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(", ", ": "))[:80].replace("|", "/")
    return str(v).replace("|", "/").replace("\n", " ")


def _flat(row: dict) -> dict:
    """Nested measures one level up: {"area": {"iou": 1}} -> {"area iou": 1}."""
    out = {}
    for k, v in row.items():
        if isinstance(v, dict) and all(not isinstance(x, (dict, list)) for x in v.values()):
            out.update({f"{k} {sub}": x for sub, x in v.items()})
        else:
            out[k] = v
    return out


def _table(rows: list[dict], limit: int = 40) -> list[str]:
    rows = [_flat(r) for r in rows]
    keys = list(dict.fromkeys(k for r in rows for k in r if not isinstance(r.get(k), (dict, list))))
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(_cell(r.get(k)) for k in keys) + " |" for r in rows[:limit]]
    if len(rows) > limit:
        out.append(f"\n({len(rows) - limit} more rows in the JSON)")
    return out


def _results(name: str, data: dict) -> list[str]:
    if name == "soak":
        cam = data.get("camera", {})
        return _table(
            [
                {
                    "minutes": data.get("minutes"),
                    "drops": data.get("drops"),
                    "reconnects": cam.get("reconnects"),
                    "rss_growth_mb": data.get("rss_growth_mb"),
                    "threads": data.get("threads_after_warmup"),
                    "frames": cam.get("frames"),
                    "frames_read": cam.get("frames_read"),
                    "frames_sent": data.get("frames_sent"),
                    "longest_gap_s": cam.get("longest_gap_s"),
                    "exit_code": data.get("exit_code"),
                    "ok": data.get("ok"),
                }
            ]
        )
    for key in ("rows", "results"):
        rows = data.get(key)
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            return _table(rows)
        if isinstance(rows, dict) and rows and all(isinstance(v, dict) for v in rows.values()):
            return _table([{"case": k, **v} for k, v in rows.items()])
    return ["(results in `benchmarks/results/" + name + ".json`)"]


def render() -> str:
    out = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; do not edit by hand.",
        "Each benchmark prints a table and writes its JSON; ratios are measured against a baseline in the same run.",
        "",
    ]
    for name, (title, what) in BENCHMARKS.items():
        out += [f"## {title}", "", what, "", f"`python benchmarks/{name}.py`", ""]
        path = RESULTS / f"{name}.json"
        if not path.is_file():
            out += ["Not measured on this tree yet.", ""]
            continue
        data = json.loads(path.read_text())
        m = data.get("machine") or {}
        where = ", ".join(str(m[k]) for k in ("cpu", "cores", "runtime") if m.get(k)) or "machine not recorded"
        out += [f"Latest results ({where}; Python {data.get('python', '?')}):", ""] + _results(name, data) + [""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/benchmarks.md is not what the results give")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print("docs/benchmarks.md is out of date: run python benchmarks/report.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
