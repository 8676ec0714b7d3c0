"""``edgecnn benchmark --ray``: the matrix as Ray tasks. Nothing here schedules: Ray places each
conversion on a node with the ``convert`` resource (a workstation with TensorFlow), each profile on a
node that declares the cell's target (``ray start --address … --resources '{"rpi5": 1}'`` on a Pi,
which needs only the bare install plus Ray), moves the model bytes through its object store, and
retries a task whose node was lost (``max_retries``). A target no node declares is predicted.
"""

from __future__ import annotations

from edgecnn.core.errors import InputError
from edgecnn.core.files import atomic_write
from edgecnn.workstation.benchmark_cells import (
    MEASURED_HERE,
    Cell,
    Results,
    _record,
    cell_error,
    finish,
    predict_cell,
)

RETRIES = 2


def connect(address: str):
    """``auto``: join the cluster this machine belongs to, else start a local one (with a ``convert``
    resource and this machine as the ``cpu`` target); anything else is a cluster address to join."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'edgecnn[ray]'") from None
    if ray.is_initialized():
        return ray
    kw = {"logging_level": "ERROR", "log_to_driver": False, "include_dashboard": False}
    if address == "auto":
        try:
            ray.init(address="auto", **kw)
        except (ConnectionError, RuntimeError, ValueError):
            ray.init(resources={"convert": 1, MEASURED_HERE: 1}, **kw)
    else:
        _reachable(address)  # Ray itself retries an unreachable address for ever
        _authorised(address)  # ... and a refused token for half a minute, then says only "failed to connect"
        try:
            ray.init(address=address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InputError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0][:200]}") from None
    return ray


def _authorised(address: str) -> None:
    """Ray >= 2.52 heads may require a token (``RAY_AUTH_MODE=token``); Ray never offers this machine's
    token to an explicit address on its own. One GCS handshake tells a refused token from anything else,
    which ``ray.init`` then reports as usual."""
    import os

    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # an older Ray: no token authentication to check
        return
    from edgecnn.core._quiet import quiet_stderr

    try:
        with quiet_stderr():  # the refusal is also logged by Ray's C++ client
            GcsClient(address=address.replace("ray://", ""), cluster_id=None)
    except AuthenticationError:
        if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
            why = "this machine's token is not the head's (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
        else:
            why = "the head requires its token: copy the head's ~/.ray/auth_token here and set RAY_AUTH_MODE=token"
        raise InputError(f"--ray {address}: the Ray head refused this machine; {why}") from None
    except Exception:  # noqa: BLE001 - not ours to judge: ray.init reports it
        return


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + an empty SETTINGS frame


def _reachable(address: str, timeout: float = 5.0) -> None:
    """A Ray head answers at ``address``, or one line says so within ``timeout`` seconds: nothing
    listening, or something that is not a Ray head (a web server, a silent port), where Ray's own client
    would retry for minutes. A Ray head's GCS speaks gRPC, which answers an HTTP/2 preface with a
    SETTINGS frame at once."""
    import socket

    host, sep, port = address.replace("ray://", "").rpartition(":")
    if not sep or not port.isdigit():
        raise InputError(f"--ray {address!r}: expected auto or HOST:PORT of a Ray head (ray start --head prints it)")
    try:
        conn = socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)
    except OSError as exc:
        raise InputError(f"--ray {address}: no Ray head answers there ({exc.strerror or exc}); start one with ray start --head, or pass --ray auto") from None
    try:
        conn.sendall(HTTP2_PREFACE)
        reply = b""
        while len(reply) < 9:
            chunk = conn.recv(9 - len(reply))
            if not chunk:
                break
            reply += chunk
    except OSError:  # a timeout or a reset
        reply = b""
    finally:
        conn.close()
    if len(reply) < 9 or reply[3] != 0x04:
        raise InputError(
            f"--ray {address}: something listens there but it is not a Ray head (no gRPC answer in {timeout:g} s); give the address 'ray start --head' printed"
        )


def _tasks(ray):
    @ray.remote(max_retries=RETRIES, retry_exceptions=False, num_returns=2)
    def convert_task(cell: Cell, folder: str):
        from pathlib import Path

        from edgecnn.core.files import remove_temp, temp_dir
        from edgecnn.workstation.benchmark_cells import convert_cell, node_name

        work = temp_dir(prefix="edgecnn-bench-")
        try:
            conv = convert_cell(cell, work)
            data = Path(conv["model_file"]).read_bytes()
            conv["node"] = node_name()
            return conv, data
        except Exception as exc:  # noqa: BLE001 - recorded as the cell's error
            return {"error": cell_error(exc)}, b""
        finally:
            remove_temp(work)

    @ray.remote(max_retries=RETRIES, retry_exceptions=False)
    def profile_task(data: bytes, target: str, runs: int):
        import os
        from pathlib import Path

        from edgecnn.workstation.benchmark_cells import profile_bytes

        fault = os.environ.get("EDGECNN_BENCH_FAULT")  # fault injection (tests): the first profiling worker dies
        if fault and not Path(fault).exists():
            Path(fault).write_text(str(os.getpid()))
            os._exit(1)  # a lost worker: Ray retries the task elsewhere or on a fresh worker
        if not data:
            return {"error": "no model: its conversion failed"}
        try:
            return profile_bytes(data, target, runs)
        except Exception as exc:  # noqa: BLE001
            return {"error": cell_error(exc)}

    return convert_task, profile_task


def run_cells(cells: list[Cell], results: Results, runs: int, address: str, progress: bool = False) -> list[dict]:
    from pathlib import Path

    from edgecnn.core._progress import progress as progress_bar

    ray = connect(address)
    convert_task, profile_task = _tasks(ray)
    resources = ray.cluster_resources()
    if resources.get("convert", 0) < 1:
        raise InputError("no Ray node has the 'convert' resource: start a workstation with ray start … --resources '{\"convert\": 1}'")
    todo, records = [], {}
    for c in cells:
        rec = results.cached(c)
        if rec is not None:
            rec["cached"] = True
            records[c.key()] = rec
        else:
            todo.append(c)
    conversions = {}  # one conversion task per distinct conversion; its bytes stay in the object store
    for c in todo:
        ck = c.conversion_key()
        if ck not in conversions:
            conversions[ck] = convert_task.options(resources={"convert": 1}, num_cpus=1).remote(c, "")
    pending = {}
    with progress_bar("benchmark (ray)", len(cells), progress) as tick:
        tick(advance=len(records))
        for c in todo:
            facts_ref, data_ref = conversions[c.conversion_key()]
            # a node of this target measures it: the task waits for the bytes, which travel node to node
            prof = profile_task.options(resources={c.target: 1}, num_cpus=0).remote(data_ref, c.target, runs) if resources.get(c.target, 0) >= 1 else None
            pending[c.key()] = (c, facts_ref, data_ref, prof)
        for key, (c, facts_ref, data_ref, prof) in pending.items():
            conv = ray.get(facts_ref)
            if conv.get("error"):
                rec = _record(c, status="failed", error=conv["error"])
            else:
                model = Path(results.folder / "models" / f"{c.conversion_key()}.tflite")
                if not model.is_file():
                    atomic_write(model, ray.get(data_ref))  # never a half-written model under its name
                conv = {**conv, "model_file": str(model)}
                if prof is not None:
                    lat = ray.get(prof)
                    rec = _record(c, status="failed", error=lat["error"]) if lat.get("error") else finish(c, conv, lat)
                else:
                    rec = finish(c, conv, predict_cell(str(model), c.target))
            if rec["status"] == "ok":  # a failure (a full disk, a lost node) is tried again next run
                results.store(rec)
            records[key] = rec
            tick(advance=1, description=c.label())
    return [records[c.key()] for c in cells]
