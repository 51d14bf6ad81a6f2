"""Turning Ray Tune's ResultGrid into tables: every reported row, one row per trial, the best.

Trial status: `completed` (the trainer ended by its own rules: all epochs or its early stop),
`pruned` (Tune ended it early: ASHA's rung cut or the time budget), `diverged` (its loss became
NaN/inf; it ended itself), `errored` (an exception, e.g. out of memory, after Tune's retries).
Each trial's `reason` says why it ended in words.

Best trial: the highest (or lowest, per mode) validation metric a trial reported at any epoch
(Ray's `scope="all"`). ASHA-stopped trials therefore compete with their early-epoch values;
since every trial's OneCycle schedule spans `max_t` epochs, an early value is taken at a high
learning rate and rarely wins over a trial that finished its schedule, which is the intended
bias: the winner is the configuration that did best on the validation split, as observed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import Result, ResultGrid

TRIALS_FILE = "trials.parquet"
SUMMARY_FILE = "summary.csv"


def results_of(grid: ResultGrid) -> list[Result]:
    return [grid[i] for i in range(len(grid))]


def trial_status(result: Any) -> str:
    metrics = result.metrics or {}
    if result.error is not None:
        return "errored"
    if metrics.get("diverged"):
        return "diverged"
    return "completed" if metrics.get("final") else "pruned"


def trial_reason(result: Any, status: str, epochs: int) -> str:
    if status == "errored":
        return str(result.error).strip().splitlines()[-1]
    if status == "diverged":
        return str((result.metrics or {}).get("reason", "non-finite loss"))
    if status == "pruned":
        return f"cut by the scheduler at epoch {epochs}"
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
        df["trial_id"] = trial_id(result)
        df["status"] = trial_status(result)
        for key, value in (result.config or {}).items():
            df[f"config.{key}"] = value
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)
    # A trial retried from its checkpoint can repeat an epoch it had reported before dying;
    # keep the retry's row, so each (trial, epoch) appears once.
    return rows.drop_duplicates(subset=["trial_id", "epoch"], keep="last").reset_index(drop=True)


def trial_id(result: Any) -> str:
    return str((result.metrics or {}).get("trial_id") or Path(result.path).name)


def trial_summary(rows: pd.DataFrame, grid: ResultGrid, metric: str, mode: str) -> pd.DataFrame:
    """One row per trial (errored ones included), best first."""
    records = []
    for result in results_of(grid):
        tid = trial_id(result)
        group = rows[rows["trial_id"] == tid] if not rows.empty else rows
        values = group[metric] if len(group) else pd.Series(dtype=float)
        status = trial_status(result)
        epochs = int(group["epoch"].max()) if len(group) else 0
        record: dict[str, Any] = {
            "trial_id": tid,
            "status": status,
            "epochs": epochs,
            f"best_{metric}": values.max() if mode == "max" else values.min(),
            f"last_{metric}": values.iloc[-1] if len(values) else float("nan"),
            "train_s": float(group["train_s"].sum()) if len(group) else 0.0,
            "reason": trial_reason(result, status, epochs),
        }
        record.update({f"config.{k}": v for k, v in (result.config or {}).items()})
        records.append(record)
    summary = pd.DataFrame(records)
    if summary.empty:
        return summary
    return summary.sort_values(
        f"best_{metric}", ascending=mode == "min", na_position="last"
    ).reset_index(drop=True)


def write_tables(
    grid: ResultGrid, results_dir: Path, metric: str, mode: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = trial_rows(grid)
    summary = trial_summary(rows, grid, metric, mode)
    rows.to_parquet(results_dir / TRIALS_FILE, index=False)
    summary.to_csv(results_dir / SUMMARY_FILE, index=False)
    return rows, summary
