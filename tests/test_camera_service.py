"""The camera loop as a service runs it. It stops cleanly whatever ends it, at any moment: the end of a
file, an error in a stage, Ctrl-C, SIGTERM, a stream that drops (200 shutdowns at random moments in one
process, then the CLI on a live stream under SIGTERM: no hang, no thread of ours left behind, the exit
code the README gives). It keeps its frames in flight within a memory budget, and runs on a dropping
stream with flat memory and threads."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from helpers import make_clip

pytestmark = [pytest.mark.device, pytest.mark.slow]

DRIVER = r"""
import faulthandler, json, os, random, signal, sys, threading
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks where a hang is
sys.path.insert(0, sys.argv[3])
from mjpeg import MjpegServer, jpegs_of_clip
from edgecnn.device import camera, detectors
from edgecnn.core.errors import Terminated, hold_signals

def on_term(signum, frame):
    raise Terminated()

signal.signal(signal.SIGTERM, on_term)
clip, out = sys.argv[1], sys.argv[2]
kept, rnd = detectors.FaceDetector._kept, random.Random(5)
state = {"fail_at": None, "seen": 0}

def failing(self, pixels):  # an error in the inference stage, at a random frame (what count and infer share)
    state["seen"] += 1
    if state["fail_at"] is not None and state["seen"] >= state["fail_at"]:
        raise RuntimeError("a stage failed")
    return kept(self, pixels)

detectors.FaceDetector._kept = failing
with MjpegServer(jpegs_of_clip(clip, 12), fps=30, drop_every=0.3) as url:
    print("ready", flush=True)
    for i in range(10 ** 6):
        try:
            mode = ("file", "file-output", "stream", "error")[i % 4]
            state["fail_at"], state["seen"] = (rnd.randint(1, 6) if mode == "error" else None), 0
            kw = {"output": out} if mode == "file-output" else {}
            source = url if mode == "stream" else clip
            s = camera.run(source=source, headless=True, reconnect=0, threads=2, **kw)
            ended = s["ended_by"]
        except KeyboardInterrupt as exc:  # arrived outside the loop (its set-up, or between runs)
            ended = "outside: " + type(exc).__name__
        except Exception as exc:
            ended = "error: " + str(exc)[:60]
        with hold_signals():  # the driver's own bookkeeping: a signal here belongs to no run, and is dropped
            # running ones (is_alive): a join cut by a signal can leave a finished thread in threading's list
            ours = [t.name for t in threading.enumerate() if t.name.startswith("edgecnn-") and t.is_alive()]
            partial = [n for n in os.listdir(os.path.dirname(out)) if n.startswith(".")]  # a video neither finished nor removed
            print(json.dumps({"i": i, "mode": mode, "ended_by": ended, "threads": ours, "partial": partial}), flush=True)
"""


def test_200_shutdowns_at_random_moments_never_hang_or_leave_a_thread(tmp_path, sigint_reaches_python):
    clip = make_clip(tmp_path / "c.mp4", frames=10)
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(clip), str(tmp_path / "o.mp4"), here], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    rnd, ends, last, pending = random.Random(3), [], time.monotonic(), ""
    try:
        while "\n" not in pending:  # "ready", read as the rest is: the bytes, not a buffered reader
            chunk = os.read(p.stdout.fileno(), 1 << 16).decode()
            assert chunk, p.stderr.read()
            pending += chunk
        ready, pending = pending.split("\n", 1)
        assert ready == "ready", ready
        os.set_blocking(p.stdout.fileno(), False)
        while len(ends) < 200:
            time.sleep(rnd.uniform(0.02, 0.4))
            if rnd.random() < 0.5:
                p.send_signal(rnd.choice([signal.SIGINT, signal.SIGTERM]))
            while True:  # whole lines only: a non-blocking read can end mid-line
                try:
                    chunk = os.read(p.stdout.fileno(), 1 << 16).decode()
                except BlockingIOError:
                    break
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split("\n")
                ends += [json.loads(line) for line in lines]
                last = time.monotonic() if lines else last
            assert p.poll() is None, p.stderr.read()[-2000:]
            if time.monotonic() - last > 30:
                p.send_signal(signal.SIGUSR1)  # every thread's stack, to stderr
                time.sleep(2)
                p.kill()
                pytest.fail(f"no loop ended for 30 s after {len(ends)}: a hang, here:\n{p.stderr.read()[-6000:]}")
    finally:
        p.kill()
        p.wait()
    assert all(e["threads"] == [] for e in ends), [e for e in ends if e["threads"]][:3]
    by = {e["ended_by"].split(":")[0] for e in ends}
    assert {"end of source", "interrupted", "terminated", "error"} <= by, by
    assert all(not e["ended_by"].startswith("error") or "a stage failed" in e["ended_by"] for e in ends), ends
    assert all(e["partial"] == [] for e in ends), [e for e in ends if e["partial"]][:3]  # (the final kill may leave one)


def test_sigterm_on_a_dropping_live_stream_ends_the_process_with_143(tmp_path):
    """The reported hang: a SIGTERM while the stream reconnects printed the summary and left the process
    alive. Six SIGTERMs at random moments, each must end the process, with 143, within 20 s."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from mjpeg import MjpegServer, jpegs_of_clip

    clip = make_clip(tmp_path / "c.mp4", frames=12)
    rnd = random.Random(9)
    with MjpegServer(jpegs_of_clip(clip), fps=20, drop_every=0.7) as url:
        for _ in range(6):
            p = subprocess.Popen(
                [sys.executable, "-m", "edgecnn.cli", "camera", "--source", url, "--headless", "--json", "--output", str(tmp_path / "live.mp4")],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(rnd.uniform(1.5, 4.0))
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=20)
            assert p.returncode == 143, err
            s = json.loads(out)
            assert s["ended_by"] == "terminated" and s["reconnects"] >= 0 and "longest_gap_s" in s


def test_a_soak_on_a_dropping_stream_reconnects_every_time_with_flat_memory_and_threads():
    """benchmarks/soak.py's short version (the 20-minute run keeps its JSON in benchmarks/results)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    from soak import soak

    r = soak(minutes=1.0, drop_every=15, fps=15, output=True)
    assert r["ok"], {k: r[k] for k in ("checks", "drops", "rss_growth_mb", "threads_after_warmup", "exit_code", "stderr_tail")}
    assert r["drops"] >= 3 and r["camera"]["frames_written"] == r["camera"]["frames"]


def test_the_frames_in_flight_keep_to_the_memory_budget(tmp_path):
    """At 720p with a video written (the encoder is the slowest stage, so every queue fills), a 40 MB
    budget holds 18 fewer frames of 2.6 MB in flight than an ample one: the peak RSS shows it."""
    from edgecnn.calibration.datasets import real_clip

    peaks, memory = {}, {}
    for mb in (40, 4000):
        code = (
            "import json, resource, subprocess, sys\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'peak': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
        )
        args = [
            sys.executable,
            "-m",
            "edgecnn.cli",
            "camera",
            "--source",
            str(real_clip("bigbuckbunny")),
            "--headless",
            "--json",
            "--max-frames",
            "150",
            "--max-memory",
            str(mb),
            "--output",
            str(tmp_path / "o.mp4"),
        ]
        r = json.loads(subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300).stdout)
        assert r["rc"] == 0, r
        memory[mb], peaks[mb] = json.loads(r["out"])["memory"], r["peak"] / 1024
    assert memory[40]["fits"] and memory[40]["frames_in_flight_max"] * memory[40]["frame_mb"] <= 40
    assert memory[4000]["frames_in_flight_max"] - memory[40]["frames_in_flight_max"] >= 15
    assert peaks[4000] - peaks[40] > 25, peaks  # the queues did fill, and the budget kept them short
