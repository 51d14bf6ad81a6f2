"""Warm start: a new study begins with what an earlier search learned.

`searcher.warm_start_from: <results folder>` adds that search's finished and pruned trials to
the new study (Optuna's `add_trials`), for the keys the two spaces share. A trial with a value
outside the new space's ranges is skipped and counted, so the sampler never models points it
could not propose. Everything is read and checked before Ray starts: a missing folder, another
metric or mode, or no shared key is a one-line error (exit 2).

Tune's tables and ASHA's rungs know only the new search's trials; the sampler sees both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from trainable.errors import ConfigError, UserError
from tuner.spec import SearchSpec

KEY = "searcher.warm_start_from"
SOURCE_ATTR, NUMBER_ATTR = "warm_start_from", "warm_start_number"


@dataclass(frozen=True)
class WarmStart:
    source: Path
    trials: tuple[FrozenTrial, ...]  # restricted to the shared keys, ready for add_trials
    skipped: int  # finished trials with a value outside the new ranges
    shared_keys: tuple[str, ...]
    new_keys: int  # keys in the new space

    def summary(self) -> dict[str, Any]:
        """What the manifest records."""
        return {"from": str(self.source), "trials": len(self.trials), "skipped": self.skipped}

    def line(self) -> str:
        return (
            f"warm start: {len(self.trials)} trials from {self.source} "
            f"({self.skipped} outside the new ranges skipped); shared keys "
            f"{len(self.shared_keys)} of {self.new_keys}: {', '.join(self.shared_keys)}"
        )


def load_warm_start(spec: SearchSpec) -> WarmStart | None:
    """The earlier search's trials, checked against `spec`; None without `warm_start_from`."""
    from tuner.results.catalog import open_experiment
    from tuner.results.layout import ResultsDir
    from tuner.search.study import distributions, load_study

    if spec.searcher.warm_start_from is None:
        return None
    source = Path(spec.searcher.warm_start_from).expanduser().resolve()
    try:
        old = open_experiment(source).spec
    except UserError as err:
        raise ConfigError(f"{KEY}: {err}") from err
    _check_same_objective(spec, old, source)
    shared = tuple(k for k in spec.space if k in old.space)
    if not shared:
        raise ConfigError(
            f"{KEY}: {source} searched {', '.join(old.space)}, none of which this space searches; "
            "warm-start from a search over some of the same keys"
        )
    files = ResultsDir(source)
    if not files.study.is_file():
        raise ConfigError(
            f"{KEY}: {source} has no study journal ({files.study.name}) to start from"
        )
    study = load_study(source, old.name)
    new_dists = distributions(spec.space)
    kept, skipped = [], 0
    for old_trial in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
    ):
        trial = _restricted(old_trial, {k: new_dists[k] for k in shared}, source)
        if trial is None:
            skipped += 1
        else:
            kept.append(trial)
    return WarmStart(source, tuple(kept), skipped, shared, len(spec.space))


def _check_same_objective(spec: SearchSpec, old: SearchSpec, source: Path) -> None:
    new_o, old_o = spec.scheduler.objective, old.scheduler.objective
    if new_o != old_o:
        raise ConfigError(
            f"{KEY}: {source} optimised {old_o.metric} ({old_o.mode}), this search "
            f"{new_o.metric} ({new_o.mode}); its scores would mislead the sampler: warm-start from "
            "a search with the same scheduler.metric and scheduler.mode"
        )


def _restricted(
    trial: FrozenTrial, dists: dict[str, optuna.distributions.BaseDistribution], source: Path
) -> FrozenTrial | None:
    """The trial on the shared keys, or None if one of its values is outside the new ranges."""
    params = {k: trial.params[k] for k in dists if k in trial.params}
    attrs: dict[str, Any] = {SOURCE_ATTR: str(source), NUMBER_ATTR: trial.number}
    try:
        return optuna.trial.create_trial(
            state=trial.state,
            value=trial.value,
            params=params,
            distributions={k: dists[k] for k in params},
            intermediate_values=dict(trial.intermediate_values),
            user_attrs=attrs,
        )
    except ValueError:  # Optuna checks every value against its distribution
        return None


def seed_study(study: optuna.Study, warm: WarmStart) -> int:
    """Add the warm-start trials the study lacks; returns how many were added. Idempotent, so
    a search restarted in the same folder does not count them twice."""
    present = {
        (t.user_attrs.get(SOURCE_ATTR), t.user_attrs.get(NUMBER_ATTR))
        for t in study.get_trials(deepcopy=False)
    }
    todo = [
        t
        for t in warm.trials
        if (t.user_attrs[SOURCE_ATTR], t.user_attrs[NUMBER_ATTR]) not in present
    ]
    study.add_trials(todo)
    return len(todo)
