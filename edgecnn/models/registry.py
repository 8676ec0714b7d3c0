"""The name -> builder table (after timm's ``register_model``/``create_model``).

The CLI, the docs and the tests enumerate models from here instead of listing them by hand.
This module imports no Keras; the builders register themselves when their modules load (on first use).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from edgecnn.core.errors import InputError, first_line
from edgecnn.models.known import ALIASES  # convenience spellings accepted by build() and the CLI


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., Any]
    family: str
    paper: str
    default_input: tuple[int, int, int]
    fixed: dict[str, Any] = field(default_factory=dict)

    def knobs(self) -> dict[str, Any]:
        """The keyword arguments a user may set, with their defaults."""
        sig = inspect.signature(self.builder)
        return {k: p.default for k, p in sig.parameters.items() if k not in self.fixed and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, family: str, paper: str, default_input, **fixed):
    """Register ``builder`` under ``name``; ``fixed`` pins arguments (e.g. ``depth=50``)."""

    def deco(builder):
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, builder, family, paper, tuple(default_input), dict(fixed))
        return builder

    return deco


def _ensure_registered() -> None:
    """The builders register themselves when their modules load; load them on first use."""
    from edgecnn.models import _load_registry

    _load_registry()


def list_models() -> list[str]:
    _ensure_registered()
    return sorted(_REGISTRY, key=_natural_key)


def _natural_key(name: str):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def get_spec(name: str) -> ModelSpec:
    _ensure_registered()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InputError(f"unknown model {name!r}{hint}; known models: {', '.join(list_models())}") from None


def resolve_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Validate user kwargs for ``name``: aliases expanded, unknown knobs rejected with the valid list."""
    spec = get_spec(name)
    knobs = spec.knobs()
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        key = key.replace("-", "_")
        key = ALIASES.get(key, key)
        if key == "input_shape" and isinstance(value, (int, float)) and not isinstance(value, bool):
            size = int(value)
            value = (size, size, spec.default_input[2])
        if key not in knobs:
            raise InputError(f"model {name!r} has no option {key!r}; valid options: " + ", ".join(sorted(set(knobs) | {"classes", "input_size"} - {"kwargs"})))
        out[key] = value
    return out


def build(name: str, **kwargs):
    """Build the registered model ``name`` with builder options (see ``knobs``)."""
    spec = get_spec(name)
    resolved = resolve_kwargs(name, kwargs)
    try:
        return spec.builder(**spec.fixed, **resolved)
    except InputError:
        raise
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot build {name!r} with {resolved}: {first_line(exc)}") from exc
