"""Renderings of the JSON reports: an HTML page for a conversion, PNG plots for profiles.

matplotlib is optional (it comes with ``edgecnn[convert]``); without it, a plot request is a clear
error and the JSON is still there.
"""

from __future__ import annotations

import base64
import html
import io
import json

from edgecnn.core.errors import InputError
from edgecnn.core.files import atomic_write


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("plots need matplotlib: pip install matplotlib (or 'edgecnn[convert]')") from None
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plot_profiles(results: list[dict], path) -> None:
    """Box plot of p50/p90/p99/min/max per result (and the thread sweep when there is one)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2 if any(r.get("thread_sweep") for r in results) else 1, figsize=(10, 4), squeeze=False)
    ax = axes[0][0]
    labels = [r.get("label", str(i)) for i, r in enumerate(results)]
    p50 = [r["latency_ms"]["p50"] for r in results]
    lo = [r["latency_ms"]["p50"] - r["latency_ms"]["min"] for r in results]
    hi = [r["latency_ms"]["p90"] - r["latency_ms"]["p50"] for r in results]
    ax.bar(labels, p50, yerr=[lo, hi], capsize=4, color="#4C72B0")
    ax.set_ylabel("latency ms (p50, whiskers min..p90)")
    ax.set_title("edgecnn profile")
    ax.tick_params(axis="x", rotation=20)
    if axes.shape[1] > 1:
        ax2 = axes[0][1]
        for r in results:
            sweep = r.get("thread_sweep") or []
            if sweep:
                ax2.plot([s["threads"] for s in sweep], [s["latency_ms"]["p50"] for s in sweep], marker="o", label=r.get("label"))
        ax2.set_xlabel("threads")
        ax2.set_ylabel("p50 ms")
        ax2.set_title("thread sweep")
        ax2.legend()
    atomic_write(path, _png(fig))
    plt.close(fig)


def write_convert_html(report: dict, path) -> None:
    """One page: the verdict first, the numbers, coverage bars, worst layers, and the full JSON."""
    from edgecnn.converters.verdict import headline

    plt = _plt()
    imgs = []
    cov = report.get("coverage", {})
    if cov:
        fig, ax = plt.subplots(figsize=(6, 2.4))
        names = list(cov)
        frac = [cov[n]["fraction"] for n in names]
        ax.barh(names, frac, color=["#55A868" if f == 1 else "#C44E52" for f in frac])
        ax.set_xlim(0, 1)
        ax.set_xlabel("fraction of ops the delegate takes")
        imgs.append(("Op coverage per delegate", _png(fig)))
        plt.close(fig)
    layers = report.get("layers") or []
    if layers:
        top = layers[:15][::-1]
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(top) + 1))
        ax.barh([str(t["layer"])[-40:] for t in top], [t["rmse_over_scale"] or 0 for t in top], color="#8172B2")
        ax.axvline(0.29, ls="--", c="grey")
        ax.set_xlabel("RMSE / quantization step (0.29 = rounding only)")
        imgs.append(("Worst quantized layers", _png(fig)))
        plt.close(fig)
    imgs += _keep_float_plot(plt, report)
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(report.get(k)))}</td></tr>"
        for k in ("output", "precision", "target", "io", "size_bytes", "float_size_bytes", "size_ratio", "seconds", "float_tensors")
    )
    acc = report.get("accuracy") or {}
    acc_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:.5g}</td></tr>" for k, v in acc.items() if isinstance(v, (int, float)))
    pics = "".join(f"<h2>{html.escape(t)}</h2><img src='data:image/png;base64,{base64.b64encode(b).decode()}'>" for t, b in imgs)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>edgecnn convert: {html.escape(str(report.get("name")))}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}} th{{text-align:left;padding-right:1em}}
pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head>
<body><p style="font-size:1.3em;font-weight:bold">{html.escape(headline(report))}</p>
<h1>{html.escape(str(report.get("name")))} → {html.escape(str(report.get("precision")))} for {html.escape(str(report.get("target")))}</h1>
<table>{rows}</table><h2>Accuracy against the float model</h2><table>{acc_rows or "<tr><td>not measured</td></tr>"}</table>
{pics}<h2>Report (JSON)</h2><pre>{html.escape(json.dumps(report, indent=2, default=str))}</pre></body></html>"""
    atomic_write(path, page.encode("utf-8"))


def _keep_float_plot(plt, report: dict) -> list:
    """The recovery steps' trade-off curve: the accuracy each activation-range candidate gives (at the int8
    size) and the accuracy bought with float layers (and bytes) by ``--keep-float auto``."""
    steps = (report.get("keep_float") or {}).get("steps") or []
    ranged = (report.get("ranges") or {}).get("steps") or []
    if not steps and not ranged:
        return []
    fig, ax = plt.subplots(figsize=(6, 3))
    for r in ranged:
        ax.plot([r.get("size_vs_int8", 1.0)], [r["metric"]], marker="s", c="tab:orange")
        ax.annotate(r["ranges"], (r.get("size_vs_int8", 1.0), r["metric"]), textcoords="offset points", xytext=(4, -10))
    if steps:
        ax.plot([s["size_vs_int8"] for s in steps], [s["metric"] for s in steps], marker="o")
    for s in steps:
        ax.annotate(f"{len(s['layers'])} float", (s["size_vs_int8"], s["metric"]), textcoords="offset points", xytext=(4, 4))
    tol = (report.get("verdict") or {}).get("tolerance")
    if tol is not None:
        ax.axhline(tol, ls="--", c="grey")
    ax.set_xlabel("size vs the plain int8 file")
    ax.set_ylabel((report.get("verdict") or {}).get("metric", "metric"))
    png = _png(fig)
    plt.close(fig)
    return [("Recovery steps (activation ranges, layers kept in float): accuracy against size", png)]
