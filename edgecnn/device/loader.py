"""The one way a ``.tflite`` file reaches an interpreter in this process.

LiteRT trusts the model file: a damaged one can kill the process with a signal. Every path that opens
a model (profile, predict, the camera's detector, embedders, bundles, cached conversions) comes
through :func:`check_model`, which

1. validates what the interpreter trusts without checking (:func:`edgecnn.core.tflite_file.parse`:
   tensor and opcode indices, optional inputs, quantization parameters, constant buffer sizes,
   shapes), and
2. loads and invokes a file it has not seen before in a child process (a fresh Python running
   :mod:`edgecnn.device._probe`, which never imports the caller's ``__main__``), caching the verdict by the
   file's sha256 and the runtime's version in the user's data folder, so that whatever the validator
   misses costs a one-line error (exit 2), never the host process. A probe that fails for its own
   reasons (a timeout, a child that cannot start or is killed) is said as such and never cached.

Device-side: the standard library, numpy and LiteRT.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edgecnn.core import tflite_file
from edgecnn.core.errors import EdgecnnError, InputError
from edgecnn.core.paths import data_dir

PROBE_TIMEOUT_S = float(os.environ.get("EDGECNN_PROBE_TIMEOUT", "30"))  # slow boards: raise it


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_DIGESTS: dict = {}  # (path, device, inode, size, mtime) -> sha256: each file is hashed once per process


def file_sha256(path, data: bytes | None = None) -> str:
    """The sha256 of the file at ``path`` (``data``: its bytes, where the caller has read them), computed
    once per process for a file that has not changed since: a bundle's check, the loader's verdict
    cache and a start-up all ask for the same 23 MB FaceNet."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_of(data if data is not None and len(data) == st.st_size else p.read_bytes())
    return _DIGESTS[key]


def _verdict_path(digest: str) -> Path:
    """One verdict per file *and runtime*: a newer LiteRT may load what an older one refused (or crash
    where it did not)."""
    from edgecnn.core.backend import get_backend

    b = get_backend()
    runtime = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{b.name}-{b.version}")
    return data_dir() / "verdicts" / f"{digest}-{runtime}.json"


def known_verdict(digest: str) -> dict | None:
    try:
        return json.loads(_verdict_path(digest).read_text())
    except (OSError, ValueError):
        return None


def record_verdict(digest: str, ok: bool, reason: str = "") -> None:
    """Remember a verdict (best effort: a read-only data folder only costs the next probe)."""
    from edgecnn.core.files import atomic_write

    path = _verdict_path(digest)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({"ok": ok, "reason": reason}).encode())
    except (OSError, EdgecnnError):  # InputError included
        pass


def forget_verdict(path) -> bool:
    """Drop the cached test-load verdict of the model file ``path`` for this runtime (``edgecnn profile
    --recheck``); True when there was one. The next load tests the file again."""
    digest = sha256_of(tflite_file.read_bytes(Path(path)))
    try:
        _verdict_path(digest).unlink()
        return True
    except FileNotFoundError:
        return False


# Signals that say the file broke the interpreter. SIGKILL is not among them: it is what the kernel's
# out-of-memory killer (or a user) sends, and says nothing about the file.
_CRASH_SIGNALS = {s for s in (getattr(signal, n, None) for n in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT")) if s}


@dataclass(frozen=True)
class Probe:
    ok: bool
    reason: str = ""
    about_the_file: bool = True  # False: the probe itself failed (timeout, no child, out of memory): never cached


def _child_command(path: str, report: str) -> list[str] | None:
    """A fresh Python running :mod:`edgecnn.device._probe`; None in a frozen app, whose executable is the app."""
    if getattr(sys, "frozen", False):
        return None
    return [sys.executable, "-m", "edgecnn.device._probe", path, report]


def _run_child(path: str, report: str) -> tuple[int | None, str]:
    """(exit code, or None on a timeout; the last line the child wrote on stderr)."""
    cmd = _child_command(path, report)
    if cmd is None:  # frozen: multiprocessing's spawn, which frozen apps support through freeze_support()
        from edgecnn.device._probe import probe_child

        proc = multiprocessing.get_context("spawn").Process(target=probe_child, args=(path, report))
        proc.start()
        proc.join(PROBE_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join()
            return None, ""
        return proc.exitcode, ""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_package_root(), os.environ.get("PYTHONPATH")) if p)}
    child = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True
    )  # Ctrl-C reaches the caller, who ends the child
    try:
        _, err = child.communicate(timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return None, ""
    except BaseException:
        child.kill()
        child.wait()
        raise
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    return child.returncode, (lines[-1][:200] if lines else "")


def _package_root() -> str:
    """The folder that holds the ``edgecnn`` package this process imported: the child imports the same."""
    return str(Path(__file__).resolve().parents[2])


def probe(path) -> Probe:
    """Load and invoke ``path`` in a child process. A crash by signal is the file's fault; a refusal by
    the runtime too; a timeout, a child that cannot start or is killed is the probe's, said as such."""
    import tempfile

    fd, report = tempfile.mkstemp(prefix="edgecnn-probe-", suffix=".txt")
    os.close(fd)
    try:
        try:
            code, last = _run_child(str(Path(path).resolve()), report)
        except OSError as exc:
            return Probe(False, f"the test load could not start ({exc.strerror or exc})", False)
        if code is None:
            return Probe(
                False, f"the test load did not finish in {PROBE_TIMEOUT_S:g} s (a busy machine? set EDGECNN_PROBE_TIMEOUT higher and try again)", False
            )
        if code == 0:
            return Probe(True)
        if code == 3:
            return Probe(False, Path(report).read_text() or "the runtime refused it")
        if code < 0 and -code in _CRASH_SIGNALS:
            return Probe(False, f"the model crashed the interpreter in a test load ({signal.Signals(-code).name})")
        if code < 0:
            return Probe(False, f"the test load was killed ({_signal_name(-code)}; out of memory?)", False)
        return Probe(False, f"the test load could not run (exit {code}{': ' + last if last else ''})", False)
    finally:
        os.unlink(report)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
        digest = file_sha256(p, data)
        verdict = known_verdict(digest)
        if verdict is None:
            result = probe(p)
            if not result.about_the_file:
                raise EdgecnnError(f"{p}: {result.reason}")
            record_verdict(digest, result.ok, result.reason)
            verdict = {"ok": result.ok, "reason": result.reason}
        if not verdict["ok"]:
            reason = verdict["reason"]
            if reason.startswith("the model "):  # crashed in the test load
                raise InputError(f"{p}: {reason}; the file is damaged (edgecnn profile {p} --recheck tests it again)")
            from edgecnn.core.backend import get_backend

            raise InputError(f"the {get_backend().name} runtime cannot load {p}: {reason}")
    return info
