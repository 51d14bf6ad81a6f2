"""The config reference (docs/config-reference.md), generated from the pydantic models: every
key of a trainer config and of a search-space file, with its type, default and bounds.

    python -m tuner.reference > docs/config-reference.md

A test compares the file with this output, so a changed model with a stale page fails CI.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from trainable.config import TrainConfig
from tuner.spec import Bound, Param, SearchSpec

_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >="))


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _nested(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *typing.get_args(annotation)]
    for c in candidates:
        if isinstance(c, type) and issubclass(c, BaseModel):
            return c
    return None


def _rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _nested(field.annotation)
        if sub is not None and typing.get_origin(field.annotation) is not dict:
            rows.extend(_rows(sub, f"{key}."))
            continue
        if field.default is not PydanticUndefined:
            default = repr(field.default)
        elif field.default_factory is not None:
            default = repr(field.default_factory())  # type: ignore[call-arg]
        else:
            default = "required"
        bounds = [
            f"{sign} {getattr(m, attr)}"
            for m in field.metadata
            for attr, sign in _BOUNDS
            if getattr(m, attr, None) is not None
        ]
        rows.append(
            f"| `{key}` | {_type_name(field.annotation)} | `{default}` | {', '.join(bounds)} |"
        )
    return rows


def markdown() -> str:
    head = ["| key | type | default | bounds |", "|---|---|---|---|"]
    parts = [
        "# Config reference",
        "",
        "Generated from the pydantic models by `python -m tuner.reference` (a test keeps it in",
        "step). Unknown keys are errors. What each key does: [training.md](training.md) for the",
        "trainer, [search.md](search.md) for search-space files.",
        "",
        "## Trainer config (`configs/*.yaml`, a search's `base`, `best_config.yaml`)",
        "",
        *head,
        *_rows(TrainConfig),
        "",
        "## Search-space file (`search_spaces/*.yaml`)",
        "",
        "`base` is a trainer config (above); `space` maps dotted trainer keys to a `Param`;",
        "`constraints` maps a measured cost (`params_m`, `macs_m`, `latency_ms`) to a `Bound`.",
        "",
        *head,
        *_rows(SearchSpec),
        *_rows(Param, "space.<key>."),
        *_rows(Bound, "constraints.<cost>."),
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown(), end="")
