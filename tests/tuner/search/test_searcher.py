"""The Optuna searcher behind Tune, against a real journal-backed study."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from trainable.vocab import FINAL
from tuner.results.layout import ResultsDir
from tuner.search.searcher import BASE_ATTR, PruneAwareOptunaSearch, enqueue_base
from tuner.search.study import distributions, study_storage
from tuner.spec import validate_spec

SPACE = {"optim.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}


def searcher(results: ResultsDir) -> PruneAwareOptunaSearch:
    return PruneAwareOptunaSearch(
        space=SPACE,
        metric="val_acc",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        study_name="s",
        storage=study_storage(results),
    )


def epoch(n: int, acc: float, final: bool = False) -> dict[str, float]:
    return {"val_acc": acc, "training_iteration": n} | ({FINAL: 1} if final else {})


def test_trial_cut_short_is_pruned_with_its_last_value(tmp_path: Path) -> None:
    s = searcher(ResultsDir(tmp_path))
    s.suggest("a")
    s.on_trial_result("a", epoch(1, 0.3))
    s.on_trial_complete("a", epoch(2, 0.4))  # no final=1: the scheduler ended it
    (trial,) = optuna.load_study(study_name="s", storage=study_storage(ResultsDir(tmp_path))).trials
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: 0.3, 2: 0.4}


def test_restored_searcher_skips_a_trial_the_study_saw_end(tmp_path: Path) -> None:
    """The driver stopped after the journal recorded a trial's end but before Tune saved its
    state: the restored Tune reruns the trial from its checkpoint and reports epochs again.
    Optuna refuses updates to a finished trial; the search must go on with the record as told."""
    results = ResultsDir(tmp_path)
    before = searcher(results)
    before.suggest("a")
    before.save(str(tmp_path / "searcher.pkl"))  # Tune's state, saved while "a" ran
    before.on_trial_result("a", epoch(1, 0.5))
    before.on_trial_complete("a", epoch(2, 0.6, final=True))

    after = searcher(results)
    after.restore(str(tmp_path / "searcher.pkl"))
    after.on_trial_result("a", epoch(2, 0.6))  # raised UpdateFinishedTrialError before the fix
    after.on_trial_complete("a", epoch(2, 0.6, final=True))

    (trial,) = optuna.load_study(study_name="s", storage=study_storage(results)).trials
    assert trial.state == TrialState.COMPLETE and trial.value == 0.6
    assert trial.intermediate_values == {1: 0.5}
    assert after.suggest("b") is not None  # the search carries on


def test_restored_searcher_reads_the_journal_not_its_pickled_snapshot(tmp_path: Path) -> None:
    """The study's ended trials are read once per process, and a restore reads them afresh: the
    pickled state may predate a trial's end in the journal ("a" here), which Tune then reports
    as complete again, with no result in between."""
    results = ResultsDir(tmp_path)
    before = searcher(results)
    before.suggest("z")
    before.on_trial_complete("z", epoch(1, 0.1, final=True))  # its first read of the journal
    before.suggest("a")
    before.save(str(tmp_path / "searcher.pkl"))  # Tune's state: "a" still running
    before.on_trial_complete("a", epoch(2, 0.6, final=True))

    after = searcher(results)
    after.restore(str(tmp_path / "searcher.pkl"))
    # already told: left as it was (told again as cut short, Optuna would refuse the epoch)
    after.on_trial_complete("a", epoch(3, 0.9))
    after.suggest("b")
    after.on_trial_complete("b", epoch(1, 0.7, final=True))  # ended after the restore: told

    study = optuna.load_study(study_name="s", storage=study_storage(results))
    assert [(t.state, t.value) for t in study.trials] == [
        (TrialState.COMPLETE, 0.1),
        (TrialState.COMPLETE, 0.6),
        (TrialState.COMPLETE, 0.7),
    ]


def test_the_base_config_is_the_first_trial_once(tmp_path: Path) -> None:
    spec = validate_spec(
        {
            "name": "s",
            "base": {"dataset": {"name": "synthetic"}, "optimizer": {"lr": 0.003}},
            "space": {"optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}},
        }
    )

    def made() -> PruneAwareOptunaSearch:
        s = PruneAwareOptunaSearch(
            space=distributions(spec.space),
            metric="val_acc",
            mode="max",
            sampler=optuna.samplers.RandomSampler(seed=0),
            study_name="s",
            storage=study_storage(ResultsDir(tmp_path)),
        )
        assert s._ot_study is not None
        return s

    first = made()
    assert enqueue_base(first._ot_study, spec) is True
    assert first.suggest("a") == {"optimizer.lr": 0.003}
    assert first.suggest("b") != {"optimizer.lr": 0.003}  # then the sampler's own proposals
    # A search restarted in the same folder: the study holds the base point already.
    again = made()
    assert enqueue_base(again._ot_study, spec) is False
    base = [t for t in again._ot_study.get_trials(deepcopy=False) if t.user_attrs.get(BASE_ATTR)]
    assert [t.params for t in base] == [{"optimizer.lr": 0.003}]
