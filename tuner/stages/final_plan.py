"""The `plan_retrain` stage: how many epochs the final training gets, and its data.

In an uninterrupted run with a `budget`, the epochs are what the budget leaves when the search
is done, at one epoch's time measured by a short probe of the final training
(`tuner.stages.probe`), and the final training gets the moment it must end by: it re-plans
its epochs to it as it goes, at its own measured pace (`trainable.training.horizon`);
otherwise `retrain.epochs`. Imports the spec, the records and the
cluster's data sharing; never the stages that call it.
"""

from __future__ import annotations

import time
from typing import Any

from trainable.config import TrainConfig
from trainable.data.datasets import load_splits
from tuner.integrations.cluster import share_data
from tuner.results.layout import ResultsDir
from tuner.results.records import RetrainPlan
from tuner.spec import SearchSpec


class RetrainData:
    """The final training's data, shared once: the search's, or with `retrain.dataset` the
    same source loaded again with the retraining's subsets."""

    def __init__(self, spec: SearchSpec, search_ref: Any) -> None:
        self.spec, self.search_ref, self._ref = spec, search_ref, None

    def ref(self, config: TrainConfig) -> Any:
        if self._ref is None:
            fresh = self.spec.retrain.dataset
            self._ref = share_data(load_splits(config.dataset)) if fresh else self.search_ref
        return self._ref

    def resources(self) -> tuple[float, float]:
        """(cpus, gpu) of one retraining seed."""
        r, s = self.spec.retrain, self.spec.resources
        return (r.cpus if r.cpus is not None else s.cpus), (r.gpu if r.gpu is not None else s.gpu)


def plan_final_training(
    spec: SearchSpec,
    results: ResultsDir,
    started: float | None,
    best_params: dict[str, Any],
    data: RetrainData,
) -> RetrainPlan:
    """The final training's epochs: what the run's budget leaves when the search is done, in
    a run that went uninterrupted, one epoch's time measured by a short probe of the final
    training (`tuner.stages.probe`); else `retrain.epochs` (a resumed run's clock has a gap)."""
    planned = spec.retrain.epochs or spec.scheduler.max_t
    budget = spec.budget
    if budget is None or started is None:
        return RetrainPlan(epochs=planned)
    from tuner.stages.probe import MAX_PROBE_EPOCHS, PROBE_EPOCHS, probe_epoch_s

    measured = trial_images_per_s(results)
    derived = budget.epoch_s(measured)
    config = spec.retrain_config(best_params, planned)
    print(
        "measuring the final training's speed here "
        f"({PROBE_EPOCHS}-{MAX_PROBE_EPOCHS} short epochs) ...",
        flush=True,
    )
    probe = probe_epoch_s(config, data.ref(config), *data.resources(), spec.checkpoint_interval_s)
    epoch_s = probe.get("epoch_s", derived)
    if not probe:
        print("the probe could not train this config's epochs: the trials' speed decides")
    elapsed = time.monotonic() - started
    epochs = budget.epochs(elapsed + probe.get("first_epochs_extra_s", 0.0), epoch_s=epoch_s)
    left_s = budget.left_s(elapsed)
    print(
        f"final training: {epochs} epochs in the {max(0.0, budget.total_s - elapsed):.0f} s the "
        f"budget leaves ({epoch_s:.2f} s an epoch measured, {derived:.2f} s from the trials' "
        f"speed; {planned} planned); it re-plans them as it goes, to end in {left_s:.0f} s",
        flush=True,
    )
    return RetrainPlan(
        epochs=epochs,
        epoch_s=epoch_s,
        derived_epoch_s=derived,
        trial_images_per_s=measured,
        ends_at=time.time() + left_s,
        max_epochs=budget.max_epochs,
    )


def trial_images_per_s(results: ResultsDir) -> float | None:
    """The median training speed the trials reported after their first epoch (the first
    carries start-up costs), or None without such rows."""
    import pandas as pd
    import pyarrow.parquet as pq

    if not results.trials.is_file():
        return None
    wanted = ["epoch", "images_per_s"]
    if not set(wanted) <= set(pq.read_schema(results.trials).names):  # no trial reported
        return None
    rows = pd.read_parquet(results.trials, columns=wanted)
    steady = rows[rows["epoch"] >= 2]["images_per_s"].dropna()
    return float(steady.median()) if len(steady) else None
