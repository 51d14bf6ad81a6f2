"""What a search's `constraints` say about the trials' measured costs: violations, the feasible
set and the Pareto front.

    constraints: {latency_ms: {max: 2.0}, params_m: {max: 1.0}}

The trainer reports `params_m`, `macs_m` and `latency_ms` (`trainable.model.cost`) with every
epoch when a search has constraints. The searcher sets each Optuna trial's violations
(`named_violations`, values <= 0 are met) before telling it its value, which TPE and GP read
as constraints; the winner is the best *feasible* trial, and the report
shows which trials were feasible and which were Pareto-optimal (no other trial at least as
good on the metric and on every constrained cost, and better on one). Imports pandas only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pandas as pd

from trainable.model.cost import COST_KEYS

COST_ATTR = "hpsearch_cost"  # the Optuna trial's user attribute holding its measured costs
FEASIBLE = "feasible"  # the summary table's column


class Bounds(Protocol):
    """A cost's limits (`tuner.spec.Bound`), read-only."""

    @property
    def min(self) -> float | None: ...

    @property
    def max(self) -> float | None: ...


# A cost's name -> its limits (keys are `tuner.spec.CostKey`s; Any, as Mapping's key is
# invariant and the spec's keys are literals).
Limits = Mapping[Any, Bounds]


def violations(constraints: Limits, cost: Mapping[str, float]) -> list[float]:
    """One value per bound, in the constraints' order: > 0 by how much it is broken, <= 0 met.
    A cost that was not measured breaks its bounds (by 1.0, a placeholder)."""
    out = []
    for key, bound in constraints.items():
        value = cost.get(key)
        for limit, sign in ((bound.max, 1.0), (bound.min, -1.0)):
            if limit is None:
                continue
            measured = value is not None and value == value  # not NaN
            out.append(sign * (float(value) - limit) if measured else 1.0)  # type: ignore[arg-type]
    return out


def is_feasible(constraints: Limits, cost: Mapping[str, float]) -> bool:
    return all(v <= 0 for v in violations(constraints, cost))


def named_violations(
    constraints: Limits, cost: Mapping[str, float]
) -> dict[str, float]:
    """`violations` keyed `<cost>.max` / `<cost>.min`: what the searcher gives each Optuna
    trial (`Trial.set_constraint`) before telling it its value."""
    names = [
        f"{key}.{side}"
        for key, bound in constraints.items()
        for side, limit in (("max", bound.max), ("min", bound.min))
        if limit is not None
    ]
    return dict(zip(names, violations(constraints, cost), strict=True))


def costs_of(result: Mapping[str, Any]) -> dict[str, float]:
    """The cost figures a trial reported, if any."""
    return {k: float(result[k]) for k in COST_KEYS if result.get(k) is not None}


def mark_feasible(summary: pd.DataFrame, constraints: Limits) -> pd.DataFrame:
    """The summary with a `feasible` column, feasible trials first (each group keeps its
    best-first order), so its first row is the best feasible trial."""
    if summary.empty:
        return summary
    flags = [
        is_feasible(constraints, {k: row[k] for k in COST_KEYS if k in summary.columns})
        for _, row in summary.iterrows()
    ]
    out = summary.assign(**{FEASIBLE: flags})
    return pd.concat([out[out[FEASIBLE]], out[~out[FEASIBLE]]], ignore_index=True)


def pareto_front(
    summary: pd.DataFrame, metric_col: str, sign: float, keys: Sequence[str]
) -> pd.DataFrame:
    """The trials no other trial dominates on (sign * metric up, each cost in `keys` down)."""
    cols = [metric_col, *keys]
    scored = summary.dropna(subset=[c for c in cols if c in summary.columns])
    if scored.empty or any(k not in scored.columns for k in keys):
        return scored.iloc[0:0]
    points = [(sign * float(r[metric_col]), *(-float(r[k]) for k in keys)) for _, r in scored.iterrows()]

    def dominated(p: tuple[float, ...]) -> bool:
        return any(all(a >= b for a, b in zip(q, p, strict=True)) and q != p for q in points)

    keep = [not dominated(p) for p in points]
    return scored[keep]


def describe(constraints: Limits) -> str:
    """`latency_ms <= 2, params_m <= 1` for messages."""
    parts = []
    for key, bound in constraints.items():
        if bound.min is not None:
            parts.append(f"{key} >= {bound.min:g}")
        if bound.max is not None:
            parts.append(f"{key} <= {bound.max:g}")
    return ", ".join(parts)
