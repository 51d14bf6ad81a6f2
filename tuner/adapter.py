"""The Tune adapter: runs the unchanged trainer inside a trial.

Per epoch the trainer's report callback becomes `tune.report(metrics, checkpoint=...)`; a trial
restarted by `FailureConfig` or `Tuner.restore` resumes from `tune.get_checkpoint()`. The
dataset arrives through `tune.with_parameters`, i.e. the Ray object store, decoded once by the
driver and shared zero-copy by every trial on a node.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from trainable.config import build_config, deep_merge
from trainable.data import Splits
from trainable.engine import train
from tuner.spec import trial_overrides


def run_trial(
    trial_params: dict[str, Any], *, base: dict[str, Any], data: Splits, gpu_fraction: float
) -> None:
    config = build_config(deep_merge(base, trial_overrides(trial_params)))
    if 0 < gpu_fraction < 1:
        import torch

        if torch.cuda.is_available():  # cap memory so one greedy trial cannot starve its neighbours
            torch.cuda.set_per_process_memory_fraction(gpu_fraction, 0)
    # A fresh folder per attempt: a retried trial resumes from Tune's checkpoint, not local files.
    out = Path(tempfile.mkdtemp(prefix="attempt-", dir=tune.get_context().get_trial_dir()))

    def report(metrics: dict[str, float], checkpoint_dir: Path) -> None:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        train(config, out, report=report, data=data)
        return
    with checkpoint.as_directory() as restored:
        train(config, out, report=report, data=data, resume_from=Path(restored))
