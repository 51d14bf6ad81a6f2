"""BaseKeepingASHA: ASHA's decisions, except that the base config's trial is never cut."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler

from tuner.search.schedulers import BaseKeepingASHA


def _trial(trial_id: str, lr: float) -> SimpleNamespace:
    # What the scheduler reads of a Tune trial; Ray's OptunaSearch nests dotted keys.
    return SimpleNamespace(trial_id=trial_id, config={"optimizer": {"lr": lr}})


def test_the_base_trial_is_kept_where_asha_cuts_its_equal() -> None:
    kw = {"metric": "val_acc", "mode": "max", "max_t": 9, "grace_period": 1, "reduction_factor": 3}
    asha = BaseKeepingASHA({"optimizer.lr": 0.003}, **kw)
    for i in range(6):  # six good trials reach the first rung first
        assert (
            asha.on_trial_result(
                None, _trial(f"g{i}", 0.01), {"training_iteration": 1, "val_acc": 0.9}
            )
            == TrialScheduler.CONTINUE
        )
    poor = {"training_iteration": 1, "val_acc": 0.1}
    assert asha.on_trial_result(None, _trial("other", 0.02), poor) == TrialScheduler.STOP
    assert asha.on_trial_result(None, _trial("base", 0.003), poor) == TrialScheduler.CONTINUE
    assert asha.is_base({"optimizer": {"lr": 0.003 * (1 + 1e-12)}})  # JSON round trip
    assert not BaseKeepingASHA(None, **kw).is_base({"optimizer": {"lr": 0.003}})
