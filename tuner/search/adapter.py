"""The Tune adapter: runs the unchanged trainer inside a trial.

Per epoch the trainer's report callback becomes `tune.report(metrics, checkpoint=...)`, with a
checkpoint only when the search's `SavePolicy` had the trainer write one (rungs, the last epoch,
`checkpoint_interval_s`); a trial restarted by `FailureConfig` or `Tuner.restore` resumes
from `tune.get_checkpoint()`. The dataset arrives as an object-store reference: decoded once
by the driver, `ray.put` once, and read zero-copy by every trial on a node (and by the
retraining tasks, from the same object).
A trial whose loss diverges reports that (`diverged=1`, NaN metrics, the reason) and ends: it is
not an error, so Tune does not retry it, and Optuna is told the trial failed.
"""

from __future__ import annotations

import functools
import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import tune

from trainable.config import build_config, deep_merge
from trainable.data.datasets import Splits
from trainable.files.checkpoint import SavePolicy
from trainable.training.engine import TrainResult, train
from trainable.vocab import DIVERGED, EPOCH, FINAL, REASON, Status
from tuner.search.limits import cap_gpu_memory, cap_host_memory, is_out_of_memory, out_of_memory
from tuner.search.stopping import quiet_worker_stop
from tuner.spec import trial_overrides


def trial_function(
    base: dict[str, Any],
    data_ref: ray.ObjectRef,
    gpu_fraction: float,
    memory_mb: int | None,
    save_policy: SavePolicy,
) -> Callable[[dict[str, Any]], None]:
    """The trainable Tune runs: `run_trial(sampled_params)`, closing over the shared data."""

    def run_trial(trial_params: dict[str, Any]) -> None:
        # Ray logs a line per checkpoint, i.e. per epoch per trial: too much for the terminal.
        logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
        quiet_worker_stop()
        config = build_config(deep_merge(base, trial_overrides(trial_params)))
        data: Splits = ray.get(data_ref)  # zero-copy view of the driver's arrays on this node
        cap_gpu_memory(gpu_fraction)
        cap_host_memory(memory_mb)
        # A fresh folder per attempt: a retried trial resumes from Tune's checkpoint instead.
        out = Path(tempfile.mkdtemp(prefix="attempt-", dir=tune.get_context().get_trial_dir()))
        # Which node ran each epoch: a column of trials.parquet, for placement questions later.
        node = {"node_id": ray.get_runtime_context().get_node_id()}
        # No per-class validation metrics at a trial's end: the search ranks trials by the
        # reported metric and scores only the retrained winner per class.
        fit = functools.partial(
            train,
            config,
            out,
            report=_tune_report(node),
            data=data,
            save_policy=save_policy,
            evaluate_best=False,
        )
        try:
            result = _fit_from_tune_checkpoint(fit)
        except Exception as err:
            if is_out_of_memory(err):
                raise out_of_memory(err, memory_mb, gpu_fraction) from None
            raise
        if result.status == Status.DIVERGED:
            _report_diverged(result, node)

    return run_trial


def _tune_report(node: dict[str, str]) -> Callable[[dict[str, float], Path | None], None]:
    """The trainer's report callback: each epoch's metrics to Tune, with the checkpoint the
    save policy had the trainer write, if any."""

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        saved = (
            None if checkpoint_dir is None else tune.Checkpoint.from_directory(str(checkpoint_dir))
        )
        tune.report(metrics | node, checkpoint=saved)

    return report


def _fit_from_tune_checkpoint(fit: Callable[..., TrainResult]) -> TrainResult:
    """A first attempt trains from scratch; a retried or restored trial resumes from the
    checkpoint Tune hands it."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return fit()
    with checkpoint.as_directory() as restored:
        return fit(resume_from=Path(restored))


def _report_diverged(result: TrainResult, node: dict[str, str]) -> None:
    """A diverged trial's last report: NaN metrics, `diverged=1` and the reason. Not an error,
    so Tune does not retry it."""
    nan = math.nan
    tune.report(
        {
            EPOCH: float(result.epochs_run + 1),
            "val_loss": nan,
            "val_acc": nan,
            "val_balanced_acc": nan,
            DIVERGED: 1.0,
            FINAL: 0.0,
            REASON: result.reason,
        }
        | node
    )
