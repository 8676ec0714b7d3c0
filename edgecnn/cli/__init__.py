"""The ``edgecnn`` command line: a shell over library functions that tests call too.

One module per command group, each with ``add_parser`` (its subcommands, each with ``run`` set as
its default) and the ``run`` functions beside it. Exit codes: 0 ok, 1 the work failed, 2 bad usage
or bad input. Errors are one line on stderr (``EDGECNN_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

if not os.environ.get("EDGECNN_DEBUG"):  # one line per problem: OpenCV's and FFmpeg's own logs stay off the terminal
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

from edgecnn import __version__
from edgecnn.core.errors import EdgecnnError, Terminated, first_line, request_stop, stop_requested


def command_groups() -> tuple:
    """The command modules, imported by :func:`build_parser` once the signal handlers are in place: a
    Ctrl-C while they load is a clean stop (exit 130), not a traceback from an import."""
    from edgecnn.cli import benchmark, camera, convert, demo, faces, models, profile, stylize, train

    return (models, convert, profile, camera, faces, stylize, benchmark, demo, train)


class Parser(argparse.ArgumentParser):
    """argparse with the house rule: a usage error is one line on stderr and exit 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="edgecnn",
        description="Build, quantize, convert and measure CNNs for phones, Raspberry Pi and Coral Edge TPU.",
    )
    p.add_argument("--version", action="version", version=f"edgecnn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in command_groups():
        group.add_parser(sub)
    return p


def _on_sigterm(signum, frame):
    from edgecnn.core.files import defer_signal

    request_stop(signum)  # kept even if the exception below is lost inside a library's finaliser
    if defer_signal(signum):  # a temporary path is being recorded: delivered again right after
        return
    raise Terminated()


def _unraisable(info) -> None:
    """A stop raised inside a library's finaliser is lost there (Python prints it with a traceback and goes
    on): it is recorded (:func:`request_stop`) and acted on by the CLI, so its traceback is noise."""
    if isinstance(info.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(info)


def _on_sigint(signum, frame):
    request_stop(signum)
    raise KeyboardInterrupt()


# System libraries that GUI builds of OpenCV need and a Raspberry Pi OS Lite image lacks.
GUI_LIBRARIES = ("libxcb", "libX11", "libGL", "libgthread", "libSM", "libICE", "libXext", "libEGL")


def missing_library(exc: ImportError) -> str | None:
    """One line naming the fix when a native library is missing (``libxcb.so.1: cannot open shared
    object file``), or None for another import error."""
    text = str(exc)
    if "cannot open shared object file" not in text:
        return None
    lib = text.split(":")[0].strip()
    if any(lib.startswith(g) for g in GUI_LIBRARIES):
        return (
            f"OpenCV cannot load {lib}: this is the GUI build (opencv-python), which needs X11/OpenGL libraries; "
            "on a headless device use: pip uninstall -y opencv-python && pip install opencv-python-headless"
        )
    return f"a system library is missing: {lib} ({first_line(exc)}); install the package that provides it"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        sys.unraisablehook = _unraisable
        signal.signal(signal.SIGTERM, _on_sigterm)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # an ignored SIGINT (a background job) stays ignored
            signal.signal(signal.SIGINT, _on_sigint)
    try:  # a signal while the parser is built is a stop like any other, not a traceback
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
    except (KeyboardInterrupt, ImportError) as exc:
        # a signal inside a C extension's import (numpy's) surfaces as that import's ImportError
        if isinstance(exc, ImportError) and not stop_requested():
            raise
        term = isinstance(exc, Terminated) or stop_requested() == signal.SIGTERM
        print(f"edgecnn: {'terminated' if term else 'interrupted'} before it started; nothing was written", file=sys.stderr)
        return 143 if term else 130
    if args.command is None:
        parser.print_help()
        return 2
    if extra and not getattr(args, "accepts_knobs", False):  # only builder options may be free-form
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code = int(args.run(args, extra) or 0)
        if stop_requested():  # the signal's exception was lost inside a library: still a stop
            raise Terminated() if stop_requested() == signal.SIGTERM else KeyboardInterrupt()
        return code
    except EdgecnnError as exc:
        print(f"edgecnn {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        what, code = ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        print(f"edgecnn {args.command}: {what}; {getattr(args, 'stop_note', 'nothing half-written was left')}", file=sys.stderr)
        return code
    except ImportError as exc:
        msg = missing_library(exc)
        if msg is None or os.environ.get("EDGECNN_DEBUG"):
            raise
        print(f"edgecnn {args.command}: error: {msg}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if os.environ.get("EDGECNN_DEBUG"):
            raise
        print(f"edgecnn {args.command}: internal error: {type(exc).__name__}: {first_line(exc)} (set EDGECNN_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    """The ``edgecnn`` command: :func:`main`, the exit hooks (temporary files), then out at once. The
    interpreter's own teardown (TensorFlow's among it) takes a second and runs with the default signal
    handlers back: a Ctrl-C then killed a finished run by SIGINT and lost its buffered output."""
    import atexit

    from edgecnn.core.errors import hold_signals

    try:
        code = main()
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    try:
        with hold_signals():  # the work is done and said: a late signal does not change how it ended
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os._exit(code)
