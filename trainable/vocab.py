"""The run's vocabulary, defined once: how a run ended, the keys an epoch's report carries
besides its metrics, and which direction of a metric is better.

The trainer writes these keys, the Tune adapter forwards them, the searcher and the result
tables read them; every module imports them from here instead of spelling the strings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Status(StrEnum):
    """How a training run or a search trial ended (a StrEnum: it is its own string in tables)."""

    COMPLETED = "completed"  # ran its epochs; for a trial: ended by the trainer's own rules
    EARLY_STOPPED = "early_stopped"  # the trainer's early stopping (a trial then counts completed)
    PRUNED = "pruned"  # cut short by the search: ASHA's rung, or the time budget after an epoch
    DIVERGED = "diverged"  # its training loss became NaN/inf; it ended itself
    ERRORED = "errored"  # an exception (e.g. out of memory) after the search's retries
    NO_RESULT = "no_result"  # ended (time budget) before it reported any epoch


# Keys of an epoch's report besides the metrics themselves.
EPOCH = "epoch"
FINAL = "final"  # 1.0 on the epoch after which the trainer ends by its own rules
DIVERGED = "diverged"  # 1.0 on the report of a run whose loss became non-finite
REASON = "reason"  # why the run ended, in words
EPOCHS_TOTAL = "epochs_total"  # the run's planned epochs, on a run a deadline re-plans
TRIAL_ID = "trial_id"

Mode = Literal["max", "min"]
# The metrics a search or early stopping may watch, and which way each is better.
# val_balanced_acc is the mean per-class accuracy: for classes of very different sizes, where
# plain accuracy rewards a model that neglects the small ones.
METRIC_MODES: dict[str, Mode] = {"val_acc": "max", "val_loss": "min", "val_balanced_acc": "max"}
ACCURACY_METRICS = ("val_acc", "val_balanced_acc")  # binomial: tables.noise_margin applies


def sign(mode: str) -> float:
    """+1 when higher is better, -1 when lower is: `sign * value` is always maximised."""
    return 1.0 if mode == "max" else -1.0


def improves(mode: str, value: float, best: float, min_delta: float = 0.0) -> bool:
    """`value` beats `best` by more than `min_delta` (any finite value beats a NaN best)."""
    return math.isnan(best) or sign(mode) * (value - best) > min_delta


@dataclass(frozen=True)
class Objective:
    """A metric and its direction, turned into a sign once (as Ray's `_metric_op`)."""

    metric: str
    mode: Mode

    @classmethod
    def of(cls, metric: str) -> Objective:
        return cls(metric, METRIC_MODES[metric])

    @property
    def sign(self) -> float:
        return sign(self.mode)

    @property
    def ascending(self) -> bool:
        """Sort order that puts the best value first."""
        return self.mode == "min"

    def improves(self, value: float, best: float, min_delta: float = 0.0) -> bool:
        return improves(self.mode, value, best, min_delta)

    def best(self, values: Iterable[float]) -> float:
        """The best finite value, NaN when there is none."""
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return math.nan
        return max(finite) if self.mode == "max" else min(finite)


def check_mode(metric: str, mode: str) -> None:
    """A ValueError naming both when `mode` is not `metric`'s direction."""
    if METRIC_MODES.get(metric) != mode:
        allowed = ", ".join(f"{m}: {d}" for m, d in METRIC_MODES.items())
        raise ValueError(f"mode '{mode}' does not fit metric '{metric}' ({allowed})")
