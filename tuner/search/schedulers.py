"""ASHA that never stops the base config's own trial.

The base config is the search's first trial (`searcher.base_first`) and the reference a winner
must beat (`tuner.results.tables.base_comparison`). Cut by ASHA at its first rung, it would be
compared at that epoch, where a config that learns fast early (a higher learning rate) looks
better than the default and may be worse after a full training: measured on an imbalanced
folder, a winner 8.6 points ahead of the base at epoch 1 lost 4.2 points of test accuracy to
the default (BENCHMARKS.md, "The one command on a folder"). Its results still go into ASHA's
rungs, so every other trial is measured against it as before.

May import Ray Tune and `tuner.results.tables`.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.utils import flatten_dict

from tuner.results.comparison import same_value


class BaseKeepingASHA(ASHAScheduler):
    def __init__(self, base_point: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_point = base_point

    def is_base(self, config: dict[str, Any]) -> bool:
        return is_base_config(self.base_point, config)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision: str = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and self.is_base(trial.config):
            return TrialScheduler.CONTINUE  # the trainer ends the base trial at max_t itself
        return decision


def is_base_config(base_point: dict[str, Any] | None, config: dict[str, Any]) -> bool:
    """Whether a trial's config holds the base config's values of the searched keys."""
    if not base_point:
        return False
    flat = flatten_dict(config, delimiter=".")  # OptunaSearch nests the dotted keys
    return all(k in flat and same_value(flat[k], v) for k, v in base_point.items())
