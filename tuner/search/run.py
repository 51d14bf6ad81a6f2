"""The search stage: a Ray Tune `Tuner` (Optuna TPE + ASHA) over the trainer, new or restored.

A results folder that holds Tune's state (`tuner.pkl`) is restored with `Tuner.restore`
(finished trials kept, unfinished ones continued from their last checkpoint, errored ones
retried); one without it starts the search afresh under the same Optuna study.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ray import tune
from ray.tune import Callback, ResultGrid

from trainable.files.checkpoint import SavePolicy
from tuner import compat
from tuner.results import bucket
from tuner.results.layout import ResultsDir
from tuner.search.patience import Patience
from tuner.search.study import repair_journal
from tuner.search.warm_start import WarmStart
from tuner.spec import SearchSpec


def _trial_name(trial: Any) -> str:
    """`trial-<id>`: short, safe on every filesystem, and the id used everywhere else
    (folders, the live table, trials.parquet, the report)."""
    return f"trial-{trial.trial_id}"


def save_policy(spec: SearchSpec) -> SavePolicy:
    """Trials write checkpoints at the rungs (where ASHA decides), at their end, and every
    `checkpoint_interval_s` for failure recovery: not every epoch, which at one-second epochs
    costs a large share of the search (bench/search/tune_overhead.py)."""
    return SavePolicy(spec.checkpoint_interval_s, frozenset(spec.scheduler.rungs()))


class ForgetDeletedCheckpoints(Callback):
    """Drop the checkpoints a restored trial lists but the disk no longer holds.

    Tune deletes a trial's oldest checkpoint (`num_to_keep`) before it next saves its own
    state. A driver stopped in between restores a list that names a deleted folder; the next
    checkpoint's clean-up then fails on it (Ray's `_delete_fs_path`: a logged FileNotFoundError
    traceback, and that checkpoint's bookkeeping skipped). Tune runs callbacks' `on_checkpoint`
    just before it registers the checkpoint, and has no public way to edit the list."""

    def on_checkpoint(
        self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        import pyarrow.fs

        manager = trial.run_metadata.checkpoint_manager
        kept = [
            k
            for k in compat.kept_checkpoints(manager)
            if k.checkpoint.filesystem.get_file_info(k.checkpoint.path).type
            != pyarrow.fs.FileType.NotFound
        ]
        compat.set_kept_checkpoints(manager, kept)


class SearchRun:
    def __init__(
        self,
        spec: SearchSpec,
        results: ResultsDir,
        data_ref: Any,
        warm: WarmStart | None = None,
        *,
        search_alg: Callable[[SearchSpec, ResultsDir, WarmStart | None], Any] | None = None,
        stop: Any = None,
        val_images: int = 0,
        trainable: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """`search_alg`, `stop` and `trainable` are for benchmarks: another searcher (Ray's
        stock OptunaSearch), a Tune stopper (an equal epoch budget per arm) and a function in
        place of the trainer (a tabular benchmark's lookup). `val_images` sizes the noise
        margin of `searcher.patience`."""
        from tuner.search.adapter import trial_function
        from tuner.search.searcher import make_searcher

        self.spec, self.results, self.data_ref, self.warm = spec, results, data_ref, warm
        self.search_alg, self.stop = search_alg or make_searcher, stop
        self.patience: Patience | None = None
        if spec.searcher.patience is not None:
            objective = spec.scheduler.objective
            base_point = spec.base_point()[0] if spec.searcher.base_first else None
            self.patience = Patience(
                objective, spec.searcher.patience, spec.retrain.min_gain, val_images, base_point
            )
        res = spec.resources
        if trainable is None:
            base = spec.base_config().to_dict()
            trainable = trial_function(base, data_ref, res.gpu, res.memory_mb, save_policy(spec))
        self.trainable = tune.with_resources(
            trainable,
            {"cpu": res.cpus, "gpu": res.gpu}
            | ({"memory": res.memory_mb * 2**20} if res.memory_mb else {}),
        )

    def fit(self, callbacks: list[Any]) -> ResultGrid:
        concurrency = self._concurrency()
        # A searcher otherwise keeps a single pending trial, so trials would start one at a time.
        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(concurrency))
        # Short epochs make Tune snapshot its state often (every reported result may end a
        # trial); on local or shared storage that is cheap, so no warning.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        repair_journal(self.results)  # the study may have been cut mid-append by a kill
        callbacks = [*callbacks, ForgetDeletedCheckpoints()]
        if bucket.has_tune_state(self.results):
            tuner = tune.Tuner.restore(
                self.results.where, trainable=self.trainable, resume_errored=True
            )
            # Tune restores the RunConfig it pickled, callbacks included: those watched the
            # previous process's stop requests, so this process's replace them (Tune has no
            # public way to pass callbacks to a restored Tuner).
            compat.set_restored_callbacks(tuner, callbacks)
        else:
            if self.patience is not None:
                callbacks.append(self.patience)
            tuner = self._new_tuner(concurrency, callbacks)
        return tuner.fit()

    def results_grid(self) -> ResultGrid:
        """The finished search's results, read from Tune's state (no trial runs)."""
        return tune.Tuner.restore(self.results.where, trainable=self.trainable).get_results()

    @staticmethod
    def params_of(trial_id: str, grid: ResultGrid) -> dict[str, Any]:
        """The sampled hyperparameters of one trial, as Tune gave them to it."""
        from tuner.results.tables import results_of
        from tuner.results.tables import trial_id as id_of

        for result in results_of(grid):
            if id_of(result) == trial_id:
                return dict(result.config or {})
        raise KeyError(trial_id)

    def _stopper(self) -> Any:
        from ray.tune.stopper import CombinedStopper

        stops = [s for s in (self.stop, self.patience) if s is not None]
        return CombinedStopper(*stops) if len(stops) > 1 else (stops[0] if stops else None)

    def _concurrency(self) -> int:
        import ray

        return self.spec.max_concurrent_trials or max(
            1, int(ray.cluster_resources().get("CPU", 1) // self.spec.resources.cpus)
        )

    def _new_tuner(self, concurrency: int, callbacks: list[Any]) -> tune.Tuner:
        from ray.tune.schedulers import FIFOScheduler

        from tuner.search.lockstep import Lockstep, LockstepASHA
        from tuner.search.progress import live_table
        from tuner.search.schedulers import BaseKeepingASHA

        spec, s = self.spec, self.spec.scheduler
        base_point = spec.base_point()[0] if spec.searcher.base_first else None
        search_alg = self.search_alg(spec, self.results, self.warm)
        scheduler: Any = FIFOScheduler()
        if spec.searcher.reproducible:
            search_alg = Lockstep(search_alg, concurrency, spec.num_samples)
            if s.kind == "asha":
                scheduler = LockstepASHA(
                    objective=s.objective,
                    rungs=s.rungs(),
                    reduction_factor=s.reduction_factor,
                    batch=concurrency,
                    base_point=base_point,
                )
        elif s.kind == "asha":
            scheduler = BaseKeepingASHA(
                base_point,
                time_attr="training_iteration",
                max_t=s.max_t,
                grace_period=s.grace_period,
                reduction_factor=s.reduction_factor,
            )
        tune_config = tune.TuneConfig(
            metric=s.metric,
            mode=s.mode,
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=spec.num_samples,
            # Lockstep limits concurrency by its batches (Tune would wrap it in a limiter).
            max_concurrent_trials=None if spec.searcher.reproducible else concurrency,
            trial_dirname_creator=_trial_name,
            trial_name_creator=_trial_name,
            time_budget_s=spec.time_budget_s,
            # A finished trial's worker takes the next trial: no new process, no second torch
            # import, the dataset already mapped. Matters when ASHA ends many trials early.
            reuse_actors=True,
        )
        run_config = tune.RunConfig(
            name=spec.name,
            storage_path=self.results.where.rsplit("/", 1)[0],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            progress_reporter=live_table(spec),
            callbacks=callbacks,
            stop=self._stopper(),
            verbose=1,
        )
        return tune.Tuner(self.trainable, tune_config=tune_config, run_config=run_config)
