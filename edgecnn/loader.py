"""The one way a ``.tflite`` file reaches an interpreter in this process.

LiteRT trusts the model file: a damaged one can kill the process with a signal. Every path that opens
a model (profile, predict, the camera's detector, embedders, bundles, cached conversions) comes
through :func:`check_model`, which

1. validates what the interpreter trusts without checking (:func:`edgecnn.tflite_file.parse`:
   tensor and opcode indices, optional inputs, quantization parameters, constant buffer sizes,
   shapes), and
2. loads and invokes a file it has not seen before in a child process, caching the verdict by the
   file's sha256 in the user's data folder, so that whatever the validator misses costs a one-line
   error (exit 2), never the host process.

Device-side: the standard library, numpy and LiteRT.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
from pathlib import Path

from edgecnn import tflite_file
from edgecnn._quiet import quiet_stderr
from edgecnn.errors import InputError
from edgecnn.paths import data_dir

PROBE_TIMEOUT_S = float(os.environ.get("EDGECNN_PROBE_TIMEOUT", "30"))  # slow boards: raise it


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verdict_path(digest: str) -> Path:
    return data_dir() / "verdicts" / f"{digest}.json"


def known_verdict(digest: str) -> dict | None:
    try:
        return json.loads(_verdict_path(digest).read_text())
    except (OSError, ValueError):
        return None


def record_verdict(digest: str, ok: bool, reason: str = "") -> None:
    """Remember a verdict (best effort: a read-only data folder only costs the next probe)."""
    from edgecnn.files import atomic_write

    path = _verdict_path(digest)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({"ok": ok, "reason": reason}).encode())
    except (OSError, InputError):
        pass


def _probe_child(path: str, report: str) -> None:
    """In the child: the first load, allocation and two invokes of the file with zeros as input, then
    the interpreter's teardown. Exit 0: it survived; exit 3: the runtime refused it (reason in
    ``report``); a signal: it crashed."""
    import gc

    import numpy as np

    from edgecnn.backend import get_backend

    try:
        interp = get_backend().Interpreter(model_path=path, num_threads=1)
        interp.allocate_tensors()
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        for _ in range(2):  # a second run catches state the first one corrupted
            interp.invoke()
            for d in interp.get_output_details():
                interp.get_tensor(d["index"])
        del interp  # the teardown is part of the test: damage can crash it there
        gc.collect()
    except Exception as exc:  # noqa: BLE001 - the runtime's own refusal: a clean verdict
        from edgecnn.errors import first_line

        Path(report).write_text(first_line(exc, 200))
        os._exit(3)
    os._exit(0)


_CONTEXT = None


def _context():
    """A forkserver that has already imported numpy and LiteRT: each probe is a fork, not a fresh
    Python (tens of milliseconds instead of half a second)."""
    global _CONTEXT
    if _CONTEXT is None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["numpy", "edgecnn.backend", "edgecnn.loader"])
        _CONTEXT = ctx
    return _CONTEXT


def probe(path) -> tuple[bool, str]:
    """Load and invoke ``path`` in a child process; (ok, reason). A signal or a hang is a failed probe.
    The verdict travels by exit code (and a file for the runtime's reason): no pipe to leave open."""
    import tempfile

    ctx = _context()
    fd, report = tempfile.mkstemp(prefix="edgecnn-probe-", suffix=".txt")
    os.close(fd)
    try:
        proc = ctx.Process(target=_probe_child, args=(str(path), report), daemon=True)
        with quiet_stderr():  # the child inherits stderr: LiteRT's start-up lines stay off the terminal
            proc.start()
        proc.join(PROBE_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
            return False, f"the model did not finish a test load in {PROBE_TIMEOUT_S:.0f} s"
        code = proc.exitcode
        if code == 0:
            return True, ""
        if code == 3:
            return False, Path(report).read_text() or "the runtime refused it"
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return False, f"the model crashed the interpreter in a test load ({name})"
        return False, f"the model did not finish a test load (exit {code})"
    finally:
        os.unlink(report)


def check_model(path, isolate: bool | None = None) -> tflite_file.TFLiteFile:
    """Validate ``path`` and make sure the interpreter survives it; returns the parsed file.

    ``isolate`` (default: on, ``EDGECNN_ISOLATE=0`` turns it off) runs the first load of an unseen
    file in a child process; the verdict is cached by sha256.
    """
    p = Path(path)
    data = tflite_file.read_bytes(p)
    info = tflite_file.parse(data, str(p))
    if isolate is None:
        isolate = os.environ.get("EDGECNN_ISOLATE", "1") != "0"
    if isolate:
        digest = sha256_of(data)
        verdict = known_verdict(digest)
        if verdict is None:
            ok, reason = probe(p)
            record_verdict(digest, ok, reason)
            verdict = {"ok": ok, "reason": reason}
        if not verdict["ok"]:
            reason = verdict["reason"]
            if reason.startswith("the model "):  # crashed or hung in the test load
                raise InputError(f"{p}: {reason}; the file is damaged")
            from edgecnn.backend import get_backend

            raise InputError(f"the {get_backend().name} runtime cannot load {p}: {reason}")
    return info
