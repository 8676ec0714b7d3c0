"""The ``.edgecnn.json`` beside a ``.keras`` file: what training knew about the model (task, labels,
anchors, preprocessing) that ``edgecnn convert`` carries into the ``.tflite`` metadata."""

from __future__ import annotations

import json
from pathlib import Path

from edgecnn.core.errors import InputError
from edgecnn.core.files import write_json


def sidecar_path(model_path) -> Path:
    """``model.keras`` -> ``model.edgecnn.json``."""
    p = Path(model_path)
    return p.with_name(p.stem + ".edgecnn.json")


def read_sidecar(model_path) -> dict | None:
    """The sidecar of ``model_path`` as a dict, None where there is none."""
    side = sidecar_path(model_path)
    if not side.is_file():
        return None
    try:
        info = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{side} is not valid JSON (it describes {Path(model_path).name}; fix or delete it)") from None
    if not isinstance(info, dict):
        raise InputError(f"{side} is not an edgecnn sidecar (a JSON object)")
    return info


def save_with_sidecar(model, path, info: dict) -> None:
    """Save ``model`` as .keras with the sidecar that ``edgecnn convert`` reads."""
    import os

    from edgecnn.core.errors import check_stop
    from edgecnn.core.files import remove_temp, temp_file, untrack_temp

    p = Path(path)
    fd, tmp = temp_file(prefix=f".{p.stem}.", suffix=p.suffix or ".keras", dir=p.parent if str(p.parent) else ".")
    os.close(fd)
    try:  # Keras writes its zip in place: a kill mid-save would leave half a model under the final name
        model.save(tmp)
        check_stop()
        os.replace(tmp, p)
        untrack_temp(tmp)
    except BaseException:
        remove_temp(tmp)
        raise
    write_json(sidecar_path(p), info)
