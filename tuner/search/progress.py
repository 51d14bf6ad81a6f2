"""What the terminal shows while a search runs, and the one line it ends with.

The live table is Ray Tune's own `CLIReporter`, configured for this product: one row per trial
with its status, epoch, the searched metric and the sampled hyperparameters, best trials first,
refreshed at most every `REFRESH_S` seconds. Tune's newer default output engine prints every 30 s
and cannot be told which columns matter, so the classic reporter is selected (see `live_table`).
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from ray.tune import CLIReporter

from trainable.vocab import Status
from tuner import compat
from tuner.spec import SearchSpec

REFRESH_S = 10  # often enough to watch ASHA cut trials, rare enough to keep the log readable
MAX_ROWS = 12


def _short(key: str) -> str:
    """`optimizer.lr` -> `lr`: the table has room for one word per column."""
    return key.rsplit(".", 1)[-1]


class BestFirstReporter(CLIReporter):
    """Tune's CLIReporter sorts finished trials by their last metric and raises TypeError on
    a trial that has none (one the time budget ended before its first report), which ended the
    whole run: sort only while every finished trial has one."""

    def report(self, trials: list[Any], done: bool, *sys_info: Any) -> None:
        finished = [t for t in trials if t.status == "TERMINATED"]
        metric = compat.reporter_metric(self)
        compat.set_sort_by_metric(self, all(metric in (t.last_result or {}) for t in finished))
        super().report(trials, done, *sys_info)


def live_table(spec: SearchSpec) -> Any:
    # Tune picks its output engine from this variable when fit() starts; "0" selects the
    # classic reporter, the only one whose columns and refresh rate can be set.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    metric = spec.scheduler.metric
    metrics = {"epoch": "epoch", metric: metric}
    for extra in ("val_acc", "val_loss"):
        metrics.setdefault(extra, extra)
    metrics["epoch_s"] = "epoch s"
    params = {key: _short(key) for key in spec.space}
    if len(set(params.values())) < len(params):  # two keys end the same way: keep them whole
        params = {key: key for key in spec.space}
    return BestFirstReporter(
        metric_columns=metrics,
        parameter_columns=params,
        sort_by_metric=True,  # metric and mode come from Tune's TuneConfig
        max_progress_rows=MAX_ROWS,
        max_report_frequency=REFRESH_S,
        max_column_length=16,
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def summary_line(summary: pd.DataFrame, metric: str, wall_s: float) -> str:
    """`10 trials: 2 completed, 8 stopped early, 0 errored; best val_acc 0.5460 (trial ...)`."""
    counts = summary["status"].value_counts().to_dict() if len(summary) else {}
    parts = [
        f"{counts.pop(Status.COMPLETED, 0)} completed",
        f"{counts.pop(Status.PRUNED, 0)} stopped early",
        f"{counts.pop(Status.ERRORED, 0)} errored",
    ]
    if counts.get(Status.NO_RESULT):
        parts.append(f"{counts.pop(Status.NO_RESULT)} without a result (time budget)")
    parts += [f"{n} {status}" for status, n in sorted(counts.items())]
    best_col = f"best_{metric}"
    scored = summary.dropna(subset=[best_col]) if len(summary) else summary
    best = (
        f"best {metric} {scored[best_col].iloc[0]:.4f} (trial {scored['trial_id'].iloc[0]})"
        if len(scored)
        else f"no trial reported {metric}"
    )
    return (
        f"{len(summary)} trials: {', '.join(parts)}; {best}; search wall time {_duration(wall_s)}"
    )
