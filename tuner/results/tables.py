"""Turning Ray Tune's ResultGrid into tables: every reported row, one row per trial, the best.

Trial status (`trainable.vocab.Status`): `completed` (the trainer ended by its own rules: all
epochs or its early stop), `pruned` (Tune ended it early: ASHA's rung cut or the time budget),
`diverged` (its loss became NaN/inf; it ended itself), `errored` (an exception, e.g. out of
memory, after Tune's retries), `no_result` (the time budget ended it before its first epoch was
reported). Each trial's `reason` says why it ended in words.

Best trial: the highest (or lowest, per mode) validation metric a trial reported at any epoch
(Ray's `scope="all"`). ASHA-stopped trials therefore compete with their early-epoch values;
since every trial's OneCycle schedule spans `max_t` epochs, an early value is taken at a high
learning rate and rarely wins over a trial that finished its schedule, which is the intended
bias: the winner is the configuration that did best on the validation split, as observed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray.tune import Result, ResultGrid

from trainable.files import atomic
from trainable.vocab import (
    ACCURACY_METRICS,
    DIVERGED,
    EPOCH,
    FINAL,
    REASON,
    TRIAL_ID,
    Objective,
    Status,
)
from trainable.model.cost import COST_KEYS
from tuner.results.comparison import BaseComparison, required_gain, same_value
from tuner.results.constraints import Limits, mark_feasible
from tuner.results.layout import ResultsDir


def results_of(grid: ResultGrid) -> list[Result]:
    return [grid[i] for i in range(len(grid))]


def trial_status(result: Any) -> Status:
    metrics = result.metrics or {}
    if result.error is not None:
        return Status.ERRORED
    if EPOCH not in metrics:
        return Status.NO_RESULT
    if metrics.get(DIVERGED):
        return Status.DIVERGED
    return Status.COMPLETED if metrics.get(FINAL) else Status.PRUNED


def trial_reason(
    result: Any, status: Status, epochs: int, budget_s: float | None, patience: bool = False
) -> str:
    """Why a trial ended, in words. `patience`: `searcher.patience` ended the search, which
    also ends the trials still running (at any epoch, not only at a rung)."""
    if status == Status.ERRORED:
        return str(result.error).strip().splitlines()[-1]
    if status == Status.DIVERGED:
        return str((result.metrics or {}).get(REASON, "non-finite loss"))
    if status == Status.NO_RESULT:
        # the time budget, or searcher.patience, ended the search while it was starting
        by = f"the time budget ({budget_s:g} s) or " if budget_s else ""
        return f"{by}the search's end came before its first epoch was reported"
    if status == Status.PRUNED:
        ends = ["the scheduler"] + ["the time budget"] * bool(budget_s) + ["patience"] * patience
        by = ", ".join(ends[:-1]) + f" or {ends[-1]}" if len(ends) > 1 else ends[0]
        return f"cut by {by} at epoch {epochs}"
    return f"finished at epoch {epochs}"


def trial_rows(grid: ResultGrid) -> pd.DataFrame:
    """Every reported epoch of every trial, with the trial's sampled config as `config.<key>`."""
    frames = []
    for result in results_of(grid):
        df = result.metrics_dataframe
        if df is None or df.empty:
            continue
        df = df.drop(
            columns=[c for c in df.columns if c.startswith("config/")], errors="ignore"
        ).copy()
        df[TRIAL_ID] = trial_id(result)
        df["status"] = trial_status(result)
        for key, value in (result.config or {}).items():
            df[f"config.{key}"] = value
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)
    # A trial retried from its checkpoint can repeat an epoch it had reported before dying;
    # keep the retry's row, so each (trial, epoch) appears once.
    return rows.drop_duplicates(subset=[TRIAL_ID, EPOCH], keep="last").reset_index(drop=True)


def trial_id(result: Any) -> str:
    return str(
        (result.metrics or {}).get(TRIAL_ID) or Path(result.path).name.removeprefix("trial-")
    )


def trial_summary(
    rows: pd.DataFrame,
    grid: ResultGrid,
    objective: Objective,
    budget_s: float | None = None,
    patience: bool = False,
) -> pd.DataFrame:
    """One row per trial (errored and result-less ones included), best first."""
    metric = objective.metric
    records = []
    for result in results_of(grid):
        tid = trial_id(result)
        group = rows[rows[TRIAL_ID] == tid] if not rows.empty else rows
        values = group[metric] if len(group) else pd.Series(dtype=float)
        status = trial_status(result)
        epochs = int(group[EPOCH].max()) if len(group) else 0
        record: dict[str, Any] = {
            TRIAL_ID: tid,
            "status": str(status),
            "epochs": epochs,
            f"best_{metric}": objective.best(values.tolist()),
            f"last_{metric}": values.iloc[-1] if len(values) else float("nan"),
            "train_s": float(group["train_s"].sum()) if len(group) else 0.0,
            REASON: trial_reason(result, status, epochs, budget_s, patience),
        }
        # The measured costs (with `constraints`): the same every epoch, the last one kept.
        record.update(
            {
                k: float(group[k].dropna().iloc[-1])
                for k in COST_KEYS
                if k in group and group[k].notna().any()
            }
        )
        record.update({f"config.{k}": v for k, v in (result.config or {}).items()})
        records.append(record)
    summary = pd.DataFrame(records)
    if summary.empty:
        return summary
    return summary.sort_values(
        f"best_{metric}", ascending=objective.ascending, na_position="last"
    ).reset_index(drop=True)


def write_tables(
    grid: ResultGrid,
    results: ResultsDir,
    objective: Objective,
    budget_s: float | None = None,
    constraints: Limits | None = None,
    patience: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`trials.parquet` and `summary.csv`, each written atomically; with `constraints` the
    summary has a `feasible` column and lists feasible trials first."""
    rows = trial_rows(grid)
    summary = trial_summary(rows, grid, objective, budget_s, patience)
    if constraints:
        summary = mark_feasible(summary, constraints)
    with atomic.atomic_path(results.trials) as tmp:
        rows.to_parquet(tmp, index=False)
    with atomic.atomic_path(results.summary) as tmp:
        summary.to_csv(tmp, index=False)
    return rows, summary


def _base_mask(summary: pd.DataFrame, point: dict[str, Any]) -> pd.Series | None:
    """Which trials ran the base config's values; None when a searched key has no column."""
    is_base = pd.Series(True, index=summary.index)
    for key, value in point.items():
        column = summary.get(f"config.{key}")
        if column is None:
            return None
        is_base &= column.map(lambda v, want=value: same_value(v, want))
    return is_base


def base_unmeasured(summary: pd.DataFrame, point: dict[str, Any]) -> bool:
    """Whether the base config's trial ran and the time ended it before it reported an
    epoch (`no_result`): not measured, which is not the same as failing (diverged, errored)."""
    is_base = _base_mask(summary, point) if not summary.empty else None
    if is_base is None or not is_base.any():
        return False
    return bool((summary.loc[is_base, "status"] == str(Status.NO_RESULT)).all())


def base_comparison(
    rows: pd.DataFrame,
    summary: pd.DataFrame,
    point: dict[str, Any],
    objective: Objective,
    min_gain: float | None = 0.0,
    val_images: int = 0,
) -> BaseComparison | None:
    """None when no trial ran the base config's values or the winner has no row at the
    base trial's last epoch. `min_gain` None: `noise_margin` on `val_images` images."""
    if summary.empty or rows.empty:
        return None
    is_base = _base_mask(summary, point)
    if is_base is None:
        return None
    metric = objective.metric
    base = summary[is_base & summary[f"best_{metric}"].notna()]
    scored = summary.dropna(subset=[f"best_{metric}"])
    if base.empty or scored.empty:
        return None
    base_id, best_id = str(base[TRIAL_ID].iloc[0]), str(scored[TRIAL_ID].iloc[0])
    base_rows = rows[rows[TRIAL_ID].astype(str) == base_id].sort_values(EPOCH)
    best_all = rows[rows[TRIAL_ID].astype(str) == best_id]
    if base_rows.empty or best_all.empty:
        return None
    # The last epoch both reached: the base runs to max_t (BaseKeepingASHA), a winner ASHA cut
    # earlier is compared where it stopped.
    epoch = int(min(base_rows[EPOCH].max(), best_all[EPOCH].max()))
    base_at = base_rows[base_rows[EPOCH] == epoch]
    best_rows = best_all[best_all[EPOCH] == epoch]
    if best_rows.empty or base_at.empty:
        return None
    base_value = float(base_at[metric].iloc[-1])
    best_value = float(best_rows[metric].iloc[-1])
    gain = objective.sign * (best_value - base_value)
    needed = required_gain(metric, base_value, min_gain, val_images)
    return BaseComparison(metric, base_id, epoch, base_value, best_id, best_value, gain, needed)
