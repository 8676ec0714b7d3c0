"""Errors meant for people: one line saying what went wrong and what to do.

The CLI maps :class:`InputError` to exit code 2 (bad usage or bad input) and any other
:class:`EdgecnnError` to exit code 1 (the work itself failed).
"""


class EdgecnnError(Exception):
    """A failure of the work; its message is one line for the user."""

    exit_code = 1


class InputError(EdgecnnError, ValueError):
    """Bad usage or bad input (unknown model, bad option, missing file, ...)."""

    exit_code = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, like Ctrl-C: temporary files are removed, a video being
    written is finalised, then the process exits 143."""


_STOP: list = []  # the signals asked to stop this process (SIGTERM, SIGINT), in order


def request_stop(signum: int) -> None:
    """Remember that a signal asked the process to stop. The exception its handler raises can be lost:
    raised inside a library's finaliser or callback (TensorFlow's ``__del__``), Python prints it and goes
    on. :func:`check_stop` raises it again where edgecnn is about to commit work."""
    _STOP.append(signum)


def check_stop() -> None:
    """Raise the stop a signal asked for, if any (before an output is renamed into place, between cells)."""
    if _STOP:
        import signal

        raise Terminated() if _STOP[0] == signal.SIGTERM else KeyboardInterrupt()


def stop_requested() -> int | None:
    return _STOP[0] if _STOP else None


_NOTED: set = set()


def note(message: str) -> None:
    """A one-line note on stderr (what was assumed or degraded), once per message per process."""
    import sys

    if message not in _NOTED:
        _NOTED.add(message)
        print(f"edgecnn: note: {message}", file=sys.stderr)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (its type name where it has none)."""
    for line in str(exc).strip().splitlines():
        line = line.strip()
        if line and not line.startswith("Traceback"):
            return line[:limit]
    return type(exc).__name__


class hold_signals:  # noqa: N801 - used as a context manager, like contextlib's
    """SIGINT and SIGTERM that arrive inside the block are held, not raised: a shutdown that a second
    Ctrl-C cut half-way would leave threads running, a capture unreleased and a video unfinished.
    ``held`` lists them for the caller to act on (a library leaves the process-wide stop record alone:
    the CLI records it). Outside the main thread (where Python runs handlers) it holds nothing."""

    def __init__(self):
        self.held: list = []
        self._old: dict = {}

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            try:
                for s in (signal.SIGINT, signal.SIGTERM):
                    if callable(signal.getsignal(s)) or s == signal.SIGTERM:  # an ignored SIGINT (a background job) stays ignored
                        self._old[s] = signal.signal(s, self._hold)
            except BaseException:  # a signal between the two swaps: the first swap is undone, nothing stays held
                self.__exit__()
                raise
        return self

    def _hold(self, signum, frame):
        self.held.append(signum)

    def raise_held(self) -> None:
        """After the block: raise the first signal held in it, as its handler would have."""
        import signal

        if self.held:
            raise Terminated() if self.held[0] == signal.SIGTERM else KeyboardInterrupt()

    def __exit__(self, *exc):
        import signal

        while self._old:
            s, old = self._old.popitem()
            signal.signal(s, old)
        return False


def start_threads(threads) -> None:
    """Start ``threads`` with SIGINT and SIGTERM held: a ``start()`` cut short by a signal can leave a
    thread running that its owner never learns of, and so never stops or joins. A signal held meanwhile
    is raised once they have all started, where the owner's shutdown sees every one of them."""
    with hold_signals() as hold:
        for t in threads:
            t.start()
    hold.raise_held()


def shut_down(steps) -> list:
    """Run ``steps`` (callables, in order) to the end whatever signals arrive: under :class:`hold_signals`,
    and a signal that slips in while the hold is being set up is held with the rest (the step it cut runs
    again, so steps must bear a second run). A shutdown cut half-way leaves threads running. Returns the
    signals held."""
    import signal

    held: list = []
    i = 0
    while i < len(steps):
        try:
            with hold_signals() as hold:
                while i < len(steps):
                    steps[i]()
                    i += 1
            held += hold.held
        except KeyboardInterrupt as exc:
            held.append(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    return held
