"""Load a target's delegate, or fall back to the CPU with one clear line.

``load_delegate`` raises a raw ``OSError`` for a missing library, ``AttributeError`` for a library
without the plugin symbols and ``ValueError`` when the plugin refuses; its half-built ``Delegate``
then prints an "Exception ignored in __del__" message. Users see none of that: they get one line
naming the library and how to get it, and the model runs on the CPU (``strict`` makes it an error).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

from edgecnn.core.backend import get_backend
from edgecnn.core.errors import InputError, first_line
from edgecnn.targets.profile import TargetProfile


class DelegateUnavailable(InputError):
    """The target's delegate cannot be loaded here (and strict mode was asked for)."""


@dataclass
class DelegateChoice:
    requested: str
    active: str  # what actually runs: xnnpack, gpu, edgetpu or cpu
    delegates: list = field(default_factory=list)
    library: str | None = None
    message: str | None = None  # the fallback line, when there was one
    compiled: object = None  # a LiteRT CompiledModel when the WebGPU accelerator runs the model


@contextlib.contextmanager
def _swallow_unraisable():
    old = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        yield
    finally:
        import gc

        gc.collect()
        sys.unraisablehook = old


def _try_load(backend, lib):
    """(delegate, None) or (None, reason); the half-built Delegate dies inside the quiet block."""
    reason = None
    with _swallow_unraisable():
        try:
            return backend.load_delegate(lib), None
        except OSError:
            reason = "not found"
        except AttributeError:
            reason = "not a delegate plugin"
        except (ValueError, RuntimeError):
            reason = "refused to load"
    return None, reason


def _candidates(profile: TargetProfile) -> list[str]:
    libs = []
    if profile.delegate_env and os.environ.get(profile.delegate_env):
        libs.append(os.environ[profile.delegate_env])
    libs += list(profile.delegate_library)
    return libs


def choose_delegates(profile: TargetProfile, strict: bool = False, warn=None, model_path: str | None = None) -> DelegateChoice:
    """Delegates for ``profile``; XNNPACK is the interpreter's built-in default and needs no library.

    For a GPU target whose delegate library is absent, LiteRT's WebGPU accelerator (``CompiledModel``)
    is tried on ``model_path`` before falling back to the CPU.
    """
    if profile.delegate in ("xnnpack", "none"):
        return DelegateChoice(profile.delegate, profile.delegate if profile.delegate == "xnnpack" else "cpu")
    if profile.delegate == "edgetpu" and model_path and not compiled_for_edgetpu(model_path):
        # libedgetpu takes only the ops edgetpu_compiler packed into its custom op: an int8 file it never
        # compiled runs wholly on the CPU, whatever delegate is attached, and must not be reported as edgetpu
        name = os.path.basename(str(model_path))
        message = (
            f"{name} is not compiled for the Edge TPU (no edgetpu-custom-op): it runs on the CPU (XNNPACK); "
            f"compile it with: edgetpu_compiler -s {name} (or edgecnn bundle --target {profile.name})"
        )
        if strict:
            raise DelegateUnavailable(message.replace(" it runs on the CPU (XNNPACK);", "") + " (or drop --strict to run it on the CPU)")
        (warn or (lambda m: print(f"edgecnn: warning: {m}", file=sys.stderr)))(message)
        return DelegateChoice(profile.delegate, "xnnpack", [], None, message)
    backend = get_backend()
    errors = []
    for lib in _candidates(profile):
        delegate, reason = _try_load(backend, lib)
        if delegate is not None:
            return DelegateChoice(profile.delegate, profile.delegate, [delegate], lib)
        errors.append(f"{lib} ({reason})")
    tried = ", ".join(errors) or "no library configured"
    if profile.delegate == "gpu" and model_path and backend.name == "ai_edge_litert":
        compiled, reason = _try_webgpu(model_path)
        if compiled is not None:
            return DelegateChoice("gpu", "gpu (LiteRT WebGPU)", [], "libLiteRtWebGpuAccelerator.so", compiled=compiled)
        tried += f"; LiteRT's WebGPU accelerator: {reason}"
    how = profile.get_delegate or "install the delegate library"
    message = f"{profile.delegate} delegate for target {profile.name!r} unavailable: {tried}; running on the CPU (XNNPACK). To get it: {how}"
    if strict:
        raise DelegateUnavailable(message.replace("; running on the CPU (XNNPACK)", "") + " (or drop --strict to fall back to the CPU)")
    if warn is None:
        print(f"edgecnn: warning: {message}", file=sys.stderr)
    else:
        warn(message)
    return DelegateChoice(profile.delegate, "xnnpack", [], None, message)


def compiled_for_edgetpu(model_path) -> bool:
    """Whether edgetpu_compiler made this file: it carries the ``edgetpu-custom-op`` custom op."""
    from edgecnn.core import tflite_file

    try:
        return any(op.custom and op.name == "edgetpu-custom-op" for op in tflite_file.read(model_path).operators)
    except Exception:  # noqa: BLE001 - not a file we can read: the loader says why, not this check
        return True


def _try_webgpu(path: str):
    """(CompiledModel, None) when LiteRT's WebGPU accelerator takes the whole graph, else (None, reason).

    The environment is created and, on failure, torn down inside the quiet block: LiteRT logs every
    accelerator it destroys, which users should not see at exit.
    """
    import gc

    from edgecnn.core._quiet import quiet_stderr

    reason = None
    with quiet_stderr():
        env = None
        try:
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.environment import Environment
            from ai_edge_litert.hardware_accelerator import HardwareAccelerator

            env = Environment.create()
            cm = CompiledModel.from_file(path, hardware_accel=HardwareAccelerator.GPU | HardwareAccelerator.CPU, environment=env)
            if cm.is_fully_accelerated():
                return cm, None
            reason = "it could not take the whole graph"
            cm = None
        except Exception as exc:  # noqa: BLE001 - RuntimeError "No adapters found" without a Vulkan GPU
            text = str(exc).lower()
            reason = "no GPU adapter (Vulkan) found" if ("adapter" in text or "webgpu" in text or "compiled_model" in text) else first_line(exc, 200)
        if env is not None:
            env.close()
        env = None
        gc.collect()
    return None, reason
