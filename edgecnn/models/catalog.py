"""The table behind ``edgecnn models``: every registered model built at its defaults and measured."""

from __future__ import annotations

import gc

from edgecnn.core._progress import progress as progress_bar
from edgecnn.models._tf import keras
from edgecnn.models.measure import stats
from edgecnn.models.registry import build, get_spec, list_models


def model_catalog(names=None, progress: bool = False) -> list[dict]:
    """One row per model: name, family, paper, input shape, params, MACs, peak activation bytes, knobs."""
    names = list_models() if names is None else list(names)
    rows = []
    with progress_bar("building", len(names), progress) as tick:
        for name in names:
            tick(description=name)
            spec = get_spec(name)
            model = build(name)
            st = stats(model)
            rows.append(
                {
                    "name": name,
                    "family": spec.family,
                    "paper": spec.paper,
                    **{k: st[k] for k in ("input_shape", "output_shape", "params", "trainable_params", "macs", "peak_activation_bytes")},
                    "knobs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.knobs().items()},
                }
            )
            del model
            keras.backend.clear_session()
            gc.collect()
            tick(advance=1)
    return rows


if __name__ == "__main__":  # regenerate the catalog the package ships (edgecnn.models.known reads it)
    import json

    from edgecnn.models.known import CATALOG_FILE

    CATALOG_FILE.write_text(json.dumps(model_catalog(progress=True), indent=1) + "\n")
    print(f"wrote {CATALOG_FILE}")
