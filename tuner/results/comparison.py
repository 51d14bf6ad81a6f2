"""The search's winner against the base config, and the noise a validation split allows:
which config the final training gets (`Retrained`), the record of the comparison
(`BaseComparison`), and the gain that counts (`required_gain`). Pure arithmetic: no Ray, no
pandas, so records and the CLI read it cheaply. `tuner.results.tables.base_comparison` finds
the two trials in a search's tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from trainable.vocab import ACCURACY_METRICS

class Retrained(StrEnum):
    """Which config the final training used."""

    WINNER = "winner"  # a searched config that beat the base config by more than the margin
    BASE = "base"  # the base config's own values: it won, or no winner beat it by the margin


@dataclass(frozen=True)
class BaseComparison:
    """The search's winner against the base config's own trial, at the last epoch both
    reached (ASHA never stops the base trial: `tuner.search.schedulers`), on the search's data.

    The winner replaces the base config only if its gain is above `min_gain`: a winner picked
    as the best of many noisy trials is expected to beat the base by chance, and a final
    training of a config no better than the default is a worse model for the same money."""

    metric: str
    base_trial_id: str
    epoch: int
    base_value: float
    best_trial_id: str
    best_value: float
    gain: float  # positive: the winner is better (the metric's direction applied)
    min_gain: float = 0.0  # the gain the winner needs to be retrained instead of the base

    @property
    def winner_kept(self) -> bool:
        return self.base_trial_id == self.best_trial_id or self.gain > self.min_gain

    def line(self) -> str:
        if self.base_trial_id == self.best_trial_id:
            return f"the base config (trial {self.base_trial_id}) is the search's best"
        versus = (
            f"the winner (trial {self.best_trial_id}) vs the base config (trial "
            f"{self.base_trial_id}) at epoch {self.epoch}: {self.metric} {self.best_value:.4f} vs "
            f"{self.base_value:.4f} ({self.gain:+.4f})"
        )
        if self.winner_kept:
            return versus
        return (
            f"{versus}, not above the {self.min_gain:.4f} the validation split can tell apart: "
            "the final training uses the base config"
        )


def noise_margin(metric: str, base_value: float, val_images: int) -> float:
    """One standard error of the difference of two accuracies on `val_images` images, each
    binomial with the base's accuracy: what the same config could gain by chance. 0 for a
    metric with no such model (val_loss: any gain counts). For balanced accuracy, pass the
    effective count (`effective_images`)."""
    if metric not in ACCURACY_METRICS or val_images <= 0:
        return 0.0
    p = min(max(base_value, 0.0), 1.0)
    return math.sqrt(2 * p * (1 - p) / val_images)


def required_gain(metric: str, value: float, min_gain: float | None, val_images: int) -> float:
    """The gain over `value` that counts: `min_gain` when set, else `noise_margin`."""
    return noise_margin(metric, value, val_images) if min_gain is None else min_gain


def effective_images(labels: Sequence[int] | np.ndarray, metric: str) -> int:
    """The validation images `noise_margin` should count. Balanced accuracy is the mean of C
    per-class accuracies on n_c images each; its variance, sum p(1-p)/n_c / C^2, is that of one
    accuracy on C^2 / sum(1/n_c) images (all images when the classes are equal)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    counts = counts[counts > 0]
    if metric != "val_balanced_acc" or len(counts) == 0:
        return int(counts.sum())
    return int(len(counts) ** 2 / float(np.sum(1.0 / counts)))


def same_value(value: Any, want: Any) -> bool:
    """A config value equals a base value (floats to 1e-9 relative: they round-trip through
    JSON and Optuna's journal)."""
    if isinstance(want, float) and isinstance(value, int | float):
        return math.isclose(float(value), want, rel_tol=1e-9, abs_tol=0.0)
    return bool(value == want)
