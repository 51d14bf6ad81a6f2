"""The reproducible mode: lockstep batches (searcher and ASHA), and two real searches that
must agree trial by trial."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from bench.support.specs import tiny_spec
from trainable.errors import ConfigError
from trainable.vocab import Objective
from tuner.search.lockstep import Lockstep, LockstepASHA
from tuner.spec import validate_spec


class Recording(Searcher):
    """A real Tune searcher that proposes a counter and records what it is told."""

    def __init__(self) -> None:
        super().__init__(metric="val_acc", mode="max")
        self.proposed = 0
        self.told: list[str] = []

    def suggest(self, trial_id: str) -> dict[Any, Any] | None:
        self.proposed += 1
        return {"x": self.proposed}

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.told.append(trial_id)


def test_lockstep_proposes_a_batch_then_waits_and_tells_in_proposed_order() -> None:
    inner = Recording()
    lockstep = Lockstep(inner, batch=2, num_samples=5)
    assert lockstep.suggest("a") == {"x": 1} and lockstep.suggest("b") == {"x": 2}
    assert lockstep.suggest("c") is None  # the batch is full
    lockstep.on_trial_complete("b", {"val_acc": 0.5})
    assert inner.told == [] and lockstep.suggest("c") is None  # "a" still runs
    lockstep.on_trial_complete("a", {"val_acc": 0.4})
    assert inner.told == ["a", "b"]  # as proposed, though b ended first
    assert lockstep.suggest("c") == {"x": 3} and lockstep.suggest("d") == {"x": 4}
    lockstep.on_trial_complete("d", None, error=True)
    lockstep.on_trial_complete("c", {"val_acc": 0.6})
    assert lockstep.size() == 1  # the last batch: what is left of num_samples
    assert lockstep.suggest("e") == {"x": 5} and lockstep.suggest("f") is None
    lockstep.on_trial_complete("e", {"val_acc": 0.1})
    assert inner.told == ["a", "b", "c", "d", "e"]
    lockstep.on_trial_complete("old", {"val_acc": 0.1})  # proposed before a restore
    assert inner.told[-1] == "old"


def _trial(trial_id: str, lr: float = 0.01) -> Any:
    return SimpleNamespace(trial_id=trial_id, config={"optimizer": {"lr": lr}})


def _decisions(order: list[tuple[str, float]]) -> dict[str, str]:
    """Rung-1 decisions for six trials in batches of two, the results arriving in `order`
    within each batch; "base" has the base config's lr."""
    asha = LockstepASHA(
        objective=Objective("val_loss", "min"),
        rungs=[1, 3],
        reduction_factor=2,
        batch=2,
        base_point={"optimizer.lr": 0.003},
    )
    names = ["a", "b", "c", "d", "base", "f"]  # in the order Tune adds them
    trials = {name: _trial(name, 0.003 if name == "base" else 0.01) for name in names}
    for name in names:
        asha.on_trial_add(None, trials[name])
    out = {}
    for name, loss in order:
        result = {"training_iteration": 1, "val_loss": loss}
        out[name] = str(asha.on_trial_result(None, trials[name], result))
    return out


def test_lockstep_asha_judges_against_earlier_batches_whatever_the_arrival_order() -> None:
    losses = [("a", 0.9), ("b", 0.5), ("c", 1.2), ("d", 0.2), ("base", 2.0), ("f", 1.0)]
    swapped = [losses[i] for i in (1, 0, 3, 2, 5, 4)]  # each batch's results in reverse
    decisions = _decisions(losses)
    assert decisions == _decisions(swapped)
    stop, go = TrialScheduler.STOP, TrialScheduler.CONTINUE
    # batch 0 has no reference; batch 1 against the median of {0.9, 0.5}; batch 2 against
    # the median of {0.9, 0.5, 1.2, 0.2}: f (1.0) is cut, the base config (2.0) never is
    assert decisions == {"a": go, "b": go, "c": stop, "d": go, "base": go, "f": stop}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"time_budget_s": 60}, "cannot go with time_budget_s"),
        ({"searcher": {"reproducible": True, "patience": 3}}, "cannot go with searcher.patience"),
        ({"constraints": {"latency_ms": {"max": 2}}}, "cannot go with constraints.latency_ms"),
        ({"max_concurrent_trials": None}, "needs max_concurrent_trials"),
    ],
)
def test_reproducible_refuses_what_depends_on_the_machine(
    extra: dict[str, Any], message: str
) -> None:
    raw = tiny_spec("r", "results", searcher={"reproducible": True}) | extra
    with pytest.raises(ConfigError, match=f"^searcher.reproducible {message}"):
        validate_spec(raw)


@pytest.mark.slow
def test_two_reproducible_searches_agree_trial_by_trial(ray_session: None, tmp_path: Path) -> None:
    """Concurrency 2, ASHA on, end to end: the same configs, the same epochs each trial ran
    (the stop decisions), the same values, the same winner (the bench's own runs)."""
    from bench.search.reproducible import one_run, spec_for

    raw = tiny_spec("repro", "results", searcher={"seed": 3, "n_startup_trials": 2})
    first, second = (one_run(spec_for(raw, tmp_path / run, 3, True)) for run in ("a", "b"))
    assert len(first["trials"]) == 8
    assert first["trials"] == second["trials"]
    assert first["winner"] == second["winner"]
    states = {state for _, _, state, _ in first["trials"]}
    assert "PRUNED" in states and "COMPLETE" in states  # ASHA made decisions to reproduce


def test_a_restored_search_keeps_its_batch(tmp_path: Path) -> None:
    """Tune's SearchGenerator saves a wrapper's state beside its searcher's and restores it:
    the trials in flight at the interruption still make one batch."""
    from ray.tune.search import SearchGenerator

    class Saving(Recording):
        def save(self, checkpoint_path: str) -> None:
            Path(checkpoint_path).write_text(str(self.proposed))

        def restore(self, checkpoint_path: str) -> None:
            self.proposed = int(Path(checkpoint_path).read_text())

    before = Lockstep(Saving(), batch=2, num_samples=6)
    before.suggest("a"), before.suggest("b")
    before.on_trial_complete("a", {"val_acc": 0.3})
    SearchGenerator(before).save_to_dir(str(tmp_path), session_str="s")

    after = Lockstep(Saving(), batch=2, num_samples=6)
    SearchGenerator(after).restore_from_dir(str(tmp_path))
    assert after.members == ["a", "b"] and list(after.ended) == ["a"]
    assert after.suggest("c") is None  # "b" still runs
    after.on_trial_complete("b", {"val_acc": 0.4})
    assert isinstance(after.searcher, Recording) and after.searcher.told == ["a", "b"]
    assert after.suggest("c") == {"x": 3}
