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
