"""Ending a search that has stopped paying: `searcher.patience`.

A search buys a better config with time the final training could have used. Once `patience`
trials in a row have ended (finished, stopped by ASHA, or failed) without beating the best so
far by more than the margin the winner needs over the base config (`retrain.min_gain`: by
default the validation split's noise), Tune is asked to end the experiment
(`Stopper.stop_all`). The search then counts as finished, and with a `budget` the final
training gets the time it left.

Trials count in the order they end, each with the best value it reported. A resumed search
runs without patience: Tune restores the stopper it pickled at the start, and no public API
replaces it.

May import Ray Tune, `trainable.vocab`, `tuner.results` and `tuner.search.schedulers`.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from trainable.vocab import Objective
from tuner.results.comparison import required_gain
from tuner.search.schedulers import is_base_config


class Patience(Stopper, Callback):
    """A Tune callback (it sees trials end) that is also the experiment's stopper."""

    def __init__(
        self,
        objective: Objective,
        patience: int,
        min_gain: float | None,
        val_images: int,
        base_point: dict[str, Any] | None = None,
    ) -> None:
        self.objective, self.patience = objective, patience
        self.min_gain, self.val_images = min_gain, val_images
        self.best = -math.inf  # sign-adjusted: higher is better
        self.stale = 0  # trials ended since the best last rose by more than the margin
        self.trial_best: dict[str, float] = {}
        self.exhausted = False
        # The reference, `first`: the base config's trial, found by its values as ASHA finds
        # it (`is_base_config`), else the first trial started. The search never ends before
        # it has (a fast search once ended first: nothing to compare the winner with), and it
        # is not simply the first started: Tune, starting two at a time, once started another
        # first and the search ended before the base reported (session 21's CI).
        self.base_point = base_point
        self.first: str | None = None
        self.first_ended = False

    def margin(self) -> float:
        value = self.objective.sign * self.best
        return required_gain(self.objective.metric, value, self.min_gain, self.val_images)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        value = result.get(self.objective.metric)
        if isinstance(value, int | float) and math.isfinite(value):
            seen = self.trial_best.get(trial.trial_id, -math.inf)
            self.trial_best[trial.trial_id] = max(seen, self.objective.sign * value)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self.first is None and (
            self.base_point is None or is_base_config(self.base_point, trial.config or {})
        ):
            self.first = trial.trial_id

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.ended(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.ended(trial.trial_id)

    def ended(self, trial_id: str) -> None:
        self.first_ended = self.first_ended or trial_id == self.first
        value = self.trial_best.pop(trial_id, -math.inf)
        if value > self.best + (self.margin() if math.isfinite(self.best) else 0.0):
            self.best, self.stale = value, 0
            return
        self.best = max(self.best, value)
        self.stale += 1
        reference_done = self.first is None or self.first_ended
        if self.stale >= self.patience and reference_done and not self.exhausted:
            self.exhausted = True
            print(self.line(), flush=True)

    def line(self) -> str:
        return (
            f"search: {self.stale} trials in a row ended without beating the best "
            f"{self.objective.metric} by more than {self.margin():.4f}: ending the search "
            "(searcher.patience); the final training gets the time it leaves"
        )

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False  # no single trial is stopped here; ASHA does that

    def stop_all(self) -> bool:
        return self.exhausted
