"""BaseKeepingASHA: ASHA's decisions, except that the base config's trial is never cut."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ray.tune.schedulers import TrialScheduler

from tuner.search.schedulers import BaseKeepingASHA

KW: dict[str, Any] = {"metric": "val_acc", "mode": "max", "max_t": 9, "grace_period": 1}


def _trial(trial_id: str, lr: float) -> Any:
    # What the scheduler reads of a Tune trial; Ray's OptunaSearch nests dotted keys.
    return SimpleNamespace(trial_id=trial_id, config={"optimizer": {"lr": lr}})


def test_the_base_trial_is_kept_where_asha_cuts_its_equal() -> None:
    asha = BaseKeepingASHA({"optimizer.lr": 0.003}, reduction_factor=3, **KW)

    def result(trial: Any, value: float) -> str:
        asha.on_trial_add(None, trial)  # type: ignore[arg-type]  # Tune adds trials first
        return str(asha.on_trial_result(None, trial, {"training_iteration": 1, "val_acc": value}))

    for i in range(6):  # six good trials reach the first rung first
        assert result(_trial(f"g{i}", 0.01), 0.9) == TrialScheduler.CONTINUE
    assert result(_trial("other", 0.02), 0.1) == TrialScheduler.STOP
    assert result(_trial("base", 0.003), 0.1) == TrialScheduler.CONTINUE
    assert asha.is_base({"optimizer": {"lr": 0.003 * (1 + 1e-12)}})  # JSON round trip
    assert not BaseKeepingASHA(None, **KW).is_base({"optimizer": {"lr": 0.003}})
