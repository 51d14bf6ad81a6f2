"""Optuna's samplers behind Ray Tune, with ASHA-stopped trials recorded as pruned.

Ray's `OptunaSearch` tells Optuna that every trial Tune ends without an error is COMPLETE,
with its last value as if final. A trial that ASHA cut at epoch 2 then looks to TPE like a
finished trial with a poor score, which biases the model of the space. The trainer marks the
epoch after which it ends by its own rules with `final=1`; a trial that ended without such a
report was cut short, so we tell Optuna it was PRUNED, with every epoch's value recorded as an
intermediate value (Optuna keeps the last one as the pruned trial's value).
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from trainable.vocab import DIVERGED, FINAL
from tuner import compat
from tuner.results.constraints import COST_ATTR, costs_of, named_violations
from tuner.results.layout import ResultsDir
from tuner.search.study import distributions, study_storage
from tuner.search.warm_start import WarmStart, seed_study
from tuner.spec import SearchSpec

log = logging.getLogger(__name__)

# Marks the study's trial that runs the base config's own values (`enqueue_base`).
BASE_ATTR = "hpsearch_base_config"


class PruneAwareOptunaSearch(OptunaSearch):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Trials the study heard end before the driver stopped, though Tune's state (saved less
        # often than the journal is appended) still had them running: see on_trial_result.
        self._told_before_restore: set[str] = set()
        # With results in a bucket: the journal to copy beside every state snapshot Tune
        # uploads (see save_to_dir).
        self.journal: Path | None = None
        # The spec's constraints (tuner.results.constraints), set by make_searcher.
        self.constraints: dict[Any, Any] = {}
        # The study's ended trials as this process first read them (see _finished_in_study).
        self._ended_in_study: set[int] | None = None

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self._told_before_restore:
            return
        try:
            super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            # The restored trial repeats epochs from its last checkpoint; the study already holds
            # its end as told, which stands (a resumed trial retraces the same epochs).
            self._told_before_restore.add(trial_id)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        completed = compat.completed_trials(self)
        if trial_id in completed:
            return
        if trial_id in self._told_before_restore or self._finished_in_study(trial_id):
            completed.add(trial_id)
            return
        ot_trial, study = compat.optuna_trials(self)[trial_id], compat.optuna_study(self)
        self._record_cost(ot_trial, result or {})
        # An errored trial (Ray would tell COMPLETE with its last value when it has one) and a
        # diverged one (NaN loss) are failures for Optuna, not scores: TPE learns nothing false.
        if error or (result and result.get(DIVERGED)):
            study.tell(ot_trial, state=TrialState.FAIL)
            completed.add(trial_id)
            return
        if not result or result.get(FINAL):
            super().on_trial_complete(trial_id, result, error)
            return
        # Tune skips on_trial_result for the result on which the scheduler stops a trial, so
        # the epoch it was cut at reaches us only here: record it as an intermediate value.
        value, step = result.get(self.metric), result.get("training_iteration")
        if value is not None and step is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a step reported already is kept as it was
                ot_trial.report(value, step)
        try:
            study.tell(ot_trial, state=TrialState.PRUNED)
        except Exception as exc:  # same tolerance as the parent (e.g. NaN values)
            log.warning(exc)
        completed.add(trial_id)

    def _record_cost(self, ot_trial: optuna.Trial, result: dict[str, Any]) -> None:
        """With `constraints`: the trial's measured costs (a user attribute, for the record)
        and its violations (Optuna's constraints, which TPE and GP steer by), set before the
        trial is told its value. Optuna ignores them on a failed trial."""
        constraints = getattr(self, "constraints", None)  # None in a searcher pickled before
        if not constraints:
            return
        cost = costs_of(result)
        if cost:
            ot_trial.set_user_attr(COST_ATTR, cost)
        for name, value in named_violations(constraints, cost).items():
            ot_trial.set_constraint(name, value)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Tune's state snapshot, plus (results in a bucket) a copy of the study journal: Tune
        uploads the folder as one, so the bucket's journal is never behind the searcher state
        that names its trials. Appends run on this same thread, so the copy is whole."""
        super().save_to_dir(checkpoint_dir, session_str)
        journal = getattr(self, "journal", None)  # None in a searcher pickled before it existed
        if journal is not None and journal.is_file():
            shutil.copyfile(journal, Path(checkpoint_dir) / journal.name)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self._ended_in_study = None  # the pickled snapshot predates the journal's last lines

    def _finished_in_study(self, trial_id: str) -> bool:
        """Whether the study's storage (the journal, newer than Tune's saved state) holds this
        trial as finished already. Only a trial that ended before this process took over can
        be, and the journal is read for those once: every trial this process ends is in
        `completed_trials` before it gets here, and reading all trials per completion made a
        1,000-trial search's completions cost O(n) each."""
        if getattr(self, "_ended_in_study", None) is None:  # None in a searcher pickled before
            ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            done = compat.optuna_study(self).get_trials(deepcopy=False, states=ended)
            self._ended_in_study = {t.number for t in done}
        assert self._ended_in_study is not None  # for mypy
        return compat.optuna_trials(self)[trial_id].number in self._ended_in_study


def make_sampler(spec: SearchSpec) -> optuna.samplers.BaseSampler:
    s = spec.searcher
    if s.kind == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.kind == "gp":
        # Trials are noisy (seed, data order), so the GP keeps a noise term (not deterministic).
        return optuna.samplers.GPSampler(seed=s.seed, n_startup_trials=s.n_startup_trials)
    return optuna.samplers.TPESampler(
        seed=s.seed,
        n_startup_trials=s.n_startup_trials,
        multivariate=s.multivariate,
        constant_liar=s.constant_liar,
    )


def make_searcher(
    spec: SearchSpec, results: ResultsDir, warm: WarmStart | None = None
) -> PruneAwareOptunaSearch:
    searcher = PruneAwareOptunaSearch(
        space=distributions(spec.space),
        metric=spec.scheduler.metric,
        mode=spec.scheduler.mode,
        sampler=make_sampler(spec),
        study_name=spec.name,
        storage=study_storage(results),
    )
    if results.remote is not None:
        searcher.journal = results.study
    searcher.constraints = dict(spec.constraints)
    if spec.searcher.base_first:  # the study was made in __init__ (space, metric, mode given)
        enqueue_base(compat.optuna_study(searcher), spec)
    if warm is not None:
        # Ray made the study in __init__ (space, metric and mode were given).
        added = seed_study(compat.optuna_study(searcher), warm)
        print(f"{warm.line()}; {added} added to the study now", flush=True)
    return searcher


def enqueue_base(study: optuna.Study, spec: SearchSpec) -> bool:
    """The base config as the study's next trial, once: a study that already holds it (a
    search restarted in its folder) does not get it again. Returns whether it was queued."""
    point, why = spec.base_point()
    if point is None:
        print(f"note: the base config is not tried as a trial: {why}", flush=True)
        return False
    if any(t.params == point for t in study.get_trials(deepcopy=False)):
        return False
    study.enqueue_trial(point, user_attrs={BASE_ATTR: True})
    return True
