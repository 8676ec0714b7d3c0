"""The isolated test load of :mod:`edgecnn.device.loader`, run as ``python -m edgecnn.device._probe MODEL REPORT``.

A fresh interpreter that imports only numpy and the runtime: never the caller's ``__main__`` (a plain
script without a ``__main__`` guard, a notebook, a pool worker), so the probe tests the file and
nothing else. Exit 0: it survived; exit 3: the runtime refused it (reason in ``REPORT``); a signal:
it crashed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def probe_child(path: str, report: str) -> None:
    """The first load, allocation and two invokes of the file with zeros as input, then the
    interpreter's teardown."""
    import gc

    import numpy as np

    from edgecnn.core.backend import get_backend

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
        from edgecnn.core.errors import first_line

        Path(report).write_text(first_line(exc, 200))
        os._exit(3)
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m edgecnn.device._probe MODEL REPORT")
    probe_child(sys.argv[1], sys.argv[2])
