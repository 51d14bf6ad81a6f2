"""The Tune adapter: runs the unchanged trainer inside a trial.

Per epoch the trainer's report callback becomes `tune.report(metrics, checkpoint=...)`; a trial
restarted by `FailureConfig` or `Tuner.restore` resumes from `tune.get_checkpoint()`. The
dataset arrives as an object-store reference: decoded once by the driver, `ray.put` once, and
read zero-copy by every trial on a node (and by the retraining tasks, from the same object).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import tune

from trainable.config import build_config, deep_merge
from trainable.data import Splits
from trainable.engine import train
from tuner.spec import trial_overrides


def cap_gpu_memory(gpu_fraction: float) -> None:
    """With a fraction f of a GPU, cap this process's CUDA memory to f of the card, so one
    greedy trial cannot starve the others packed on it. No-op on CPU or whole GPUs."""
    if 0 < gpu_fraction < 1:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(gpu_fraction, 0)


def trial_function(
    base: dict[str, Any], data_ref: ray.ObjectRef, gpu_fraction: float
) -> Callable[[dict[str, Any]], None]:
    """The trainable Tune runs: `run_trial(sampled_params)`, closing over the shared data."""

    def run_trial(trial_params: dict[str, Any]) -> None:
        config = build_config(deep_merge(base, trial_overrides(trial_params)))
        data: Splits = ray.get(data_ref)  # zero-copy view of the driver's arrays on this node
        cap_gpu_memory(gpu_fraction)
        # A fresh folder per attempt: a retried trial resumes from Tune's checkpoint instead.
        out = Path(tempfile.mkdtemp(prefix="attempt-", dir=tune.get_context().get_trial_dir()))

        def report(metrics: dict[str, float], checkpoint_dir: Path) -> None:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            train(config, out, report=report, data=data)
            return
        with checkpoint.as_directory() as restored:
            train(config, out, report=report, data=data, resume_from=Path(restored))

    return run_trial
