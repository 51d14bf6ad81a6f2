"""A reproducible search (`searcher.reproducible: true`): trials run in lockstep batches.

With concurrent trials, a search normally depends on the order in which results arrive: TPE
proposes from the trials that happen to have ended, and ASHA compares a trial with the trials
that happen to have reached its rung first. Both orders change from run to run, so the same
spec and seed give different searches.

Here the search runs in batches of `max_concurrent_trials` trials (fewer in the last one, to
make `num_samples`). `Lockstep` proposes a batch only once every trial of the batch before has
ended, and tells Optuna their ends in the order it proposed them, so each batch is proposed
from the same history. `LockstepASHA` applies ASHA's rule (stop a trial whose metric at a rung
is below the rung's `1 - 1/reduction_factor` quantile) against the trials of earlier batches
only, whose rung values are all known by then; the first batch is never cut. The trainer is
seeded, so the same configs give the same metrics on the same machine and thread count.

The price is idle slots: a batch waits for its slowest trial (bench/search/reproducible.py
measures it). A search ended by time (`time_budget_s`) or by `patience` (counted in the order
trials end), or constrained by a measured latency, depends on the machine's speed, so the spec
refuses those with `reproducible`. A search resumed after an interruption keeps its batches
(Tune saves the searcher's state), but Tune does not save a scheduler's: rung values from
before the interruption are lost, so the resumed part may cut differently from an
uninterrupted run.

May import Ray Tune, `trainable.vocab` and `tuner.search.schedulers`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from trainable.vocab import Objective
from tuner.search.schedulers import is_base_config


class Lockstep(Searcher):
    """Wraps a searcher so trials are proposed, and their ends told, a whole batch at a time."""

    def __init__(self, searcher: Searcher, batch: int, num_samples: int) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher, self.batch, self.num_samples = searcher, batch, num_samples
        self.start = 0  # trials proposed before this batch
        self.members: list[str] = []  # this batch's trials, in the order proposed
        self.ended: dict[str, tuple[dict[str, Any] | None, bool]] = {}

    def size(self) -> int:
        """This batch's size: `batch`, or what is left of `num_samples`."""
        return max(1, min(self.batch, self.num_samples - self.start))

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        return bool(self.searcher.set_search_properties(metric, mode, config, **spec))

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return True  # the batches limit concurrency: Tune must not add a ConcurrencyLimiter

    def suggest(self, trial_id: str) -> dict[Any, Any] | None:  # or Searcher.FINISHED
        if len(self.members) >= self.size():
            return None  # Tune asks again on its next step
        suggestion: Any = self.searcher.suggest(trial_id)
        if suggestion not in (None, Searcher.FINISHED):
            self.members.append(trial_id)
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id not in self.members:  # a trial proposed before a restore: told at once
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            return
        self.ended[trial_id] = (result, error)
        if len(self.ended) < self.size():
            return
        for member in self.members:  # in the order proposed, not the order they ended
            ended, failed = self.ended[member]
            self.searcher.on_trial_complete(member, result=ended, error=failed)
        self.start += len(self.members)
        self.members, self.ended = [], {}

    def get_state(self) -> dict[str, Any]:
        # Tune's SearchGenerator saves each wrapper's state beside the wrapped searcher's own
        # snapshot, and restores both: a resumed search keeps its batches.
        return {k: v for k, v in self.__dict__.items() if k != "searcher"}

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class LockstepASHA(FIFOScheduler):
    """ASHA's stopping rule, decided from the rung values of earlier batches only.

    Trials belong to batches in the order Tune adds them (the order `Lockstep` proposes
    them). The base config's own trial is never cut (as in `BaseKeepingASHA`)."""

    def __init__(
        self,
        *,
        objective: Objective,
        rungs: list[int],
        reduction_factor: float,
        batch: int,
        base_point: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.objective = objective
        self.rungs, self.reduction_factor, self.batch = rungs, reduction_factor, batch
        self.base_point = base_point
        self.batch_of: dict[str, int] = {}
        self.judged: dict[str, set[int]] = defaultdict(set)
        # rung -> batch -> sign-adjusted values (higher is better)
        self.recorded: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self.batch_of[trial.trial_id] = len(self.batch_of) // self.batch

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        iteration, value = result.get("training_iteration"), result.get(self.objective.metric)
        if iteration is None or not isinstance(value, int | float):
            return TrialScheduler.CONTINUE
        decision = TrialScheduler.CONTINUE
        for rung in self.rungs:
            if iteration < rung or rung in self.judged[trial.trial_id]:
                continue
            self.judged[trial.trial_id].add(rung)
            if self.cut(trial.trial_id, rung, value) and not self.is_base(trial.config):
                decision = TrialScheduler.STOP
        return decision

    def cut(self, trial_id: str, rung: int, value: float) -> bool:
        """Records the trial's value at the rung; whether it falls below the rung's cutoff
        among earlier batches."""
        mine = self.batch_of.get(trial_id, 0)
        earlier = [v for b, values in self.recorded[rung].items() if b < mine for v in values]
        if not math.isfinite(value):  # a diverged trial: the trainer ends it; not a rung value
            return bool(earlier)
        score = self.objective.sign * value
        self.recorded[rung][mine].append(score)
        if not earlier:
            return False
        cutoff = float(np.percentile(earlier, (1 - 1 / self.reduction_factor) * 100))
        return score < cutoff

    def is_base(self, config: dict[str, Any]) -> bool:
        return is_base_config(self.base_point, config)

    def debug_string(self) -> str:
        return f"LockstepASHA: batches of {self.batch}, rungs {self.rungs}"
