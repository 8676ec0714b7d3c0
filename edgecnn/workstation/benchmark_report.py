"""What a benchmark run writes beside its cells: results.csv and results.json, one Pareto plot
(latency against accuracy) per target, and an HTML page that shows them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from edgecnn import __version__
from edgecnn.core.files import atomic_write, write_json


def write_outputs(records: list[dict], folder: Path, config: dict) -> dict:
    """results.json, results.csv, a Pareto plot per target and index.html."""
    folder = Path(folder)
    write_json(folder / "results.json", {"config": config, "cells": records})
    cols = [
        "label",
        "model",
        "options",
        "precision",
        "target",
        "status",
        "size_bytes",
        "convert_seconds",
        "accuracy",
        "eval_top1",
        "p50_ms",
        "latency_source",
        "coverage_xnnpack",
        "coverage_gpu",
        "coverage_edgetpu",
        "profile_node",
        "error",
    ]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in records:
        w.writerow(
            [
                r.get("label"),
                r.get("model"),
                json.dumps(r.get("options")),
                r.get("precision"),
                r.get("target"),
                r.get("status"),
                r.get("size_bytes"),
                r.get("convert_seconds"),
                accuracy_of(r),
                r.get("eval_top1"),
                p50_of(r),
                r.get("latency_source"),
                *((r.get("coverage") or {}).get(d) for d in ("xnnpack", "gpu", "edgetpu")),
                r.get("node"),
                r.get("error"),
            ]
        )
    atomic_write(folder / "results.csv", buf.getvalue().encode())
    plots = pareto_plots(records, folder)
    html = render_html(records, plots, config)
    atomic_write(folder / "index.html", html.encode())
    return {"json": str(folder / "results.json"), "csv": str(folder / "results.csv"), "html": str(folder / "index.html"), "plots": plots}


def accuracy_of(r: dict):
    """The accuracy a cell is ranked by: real top-1 on --eval, else agreement with the float model."""
    if r.get("eval_top1") is not None:
        return r["eval_top1"]
    acc = r.get("accuracy_vs_float") or {}
    if "top1_agreement" in acc:
        return acc["top1_agreement"]
    if "cosine_mean" in acc:
        return acc["cosine_mean"]
    return 1.0 if r.get("status") == "ok" and r.get("precision") == "fp32" else None


def p50_of(r: dict):
    lat = r.get("latency_ms") or {}
    return lat.get("p50")


def pareto_front(points):
    """Indices of the points no other point beats on both latency (lower) and accuracy (higher)."""
    front = []
    for i, (lat, acc) in enumerate(points):
        if not any((l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for j, (l2, a2) in enumerate(points) if j != i):
            front.append(i)
    return front


def pareto_plots(records, folder: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    for target in sorted({r["target"] for r in records}):
        pts = [
            (p50_of(r), accuracy_of(r), r)
            for r in records
            if r["target"] == target and r.get("status") == "ok" and p50_of(r) is not None and accuracy_of(r) is not None
        ]
        if not pts:
            continue
        front = set(pareto_front([(p, a) for p, a, _ in pts]))
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, (p, a, r) in enumerate(pts):
            ax.scatter(p, a, s=40, color="tab:red" if i in front else "tab:gray", zorder=3)
            label = " ".join([r["model"], *(f"{k}={v}" for k, v in sorted(r["options"].items())), r["precision"]])
            ax.annotate(label, (p, a), fontsize=7, xytext=(3, 3), textcoords="offset points")
        fr = sorted((pts[i][0], pts[i][1]) for i in front)
        ax.plot([p for p, _ in fr], [a for _, a in fr], color="tab:red", lw=1, zorder=2, label="Pareto frontier")
        src = {r.get("latency_source") for _, _, r in pts}
        ax.set_xlabel("p50 latency (ms)" + (" — predicted" if src == {"predicted"} else ""))
        ax.set_ylabel("accuracy (top-1 on --eval, else agreement with float)")
        ax.set_title(f"{target}: accuracy against latency")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        out = folder / f"pareto-{target}.png"
        fig.tight_layout()
        fig.savefig(out, dpi=110)
        plt.close(fig)
        plots[target] = str(out)
    return plots


def render_html(records, plots, config) -> str:
    import html

    ok = sum(r.get("status") == "ok" for r in records)
    rows = []
    for r in sorted(records, key=lambda r: (r["target"], p50_of(r) or 1e9)):
        lat = p50_of(r)
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    r["label"],
                    r.get("status"),
                    f"{(r.get('size_bytes') or 0) / 1e6:.2f}" if r.get("size_bytes") else "",
                    "" if accuracy_of(r) is None else f"{accuracy_of(r):.4f}",
                    "" if lat is None else f"{lat:.2f}",
                    r.get("latency_source", ""),
                    r.get("convert_seconds", ""),
                    r.get("error", ""),
                )
            )
            + "</tr>"
        )
    imgs = "".join(f'<h2>{html.escape(t)}</h2><img src="{Path(p).name}" alt="Pareto plot for {html.escape(t)}">' for t, p in plots.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>edgecnn benchmark</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}</style>
</head><body><h1>edgecnn benchmark</h1><p>{ok} of {len(records)} cells finished; latency "predicted" where no node of that target measured it.
edgecnn {html.escape(__version__)}; settings {html.escape(json.dumps(config.get("settings", {})))}</p>{imgs}
<h2>cells</h2><table><tr><th>cell</th><th>status</th><th>MB</th><th>accuracy</th><th>p50 ms</th><th>latency</th><th>convert s</th><th>error</th></tr>
{"".join(rows)}</table></body></html>"""
