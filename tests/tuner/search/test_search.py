"""The search stage's Tune callbacks, on Tune's own trial objects."""

from __future__ import annotations

import shutil
from pathlib import Path

from ray import tune
from ray.train import Checkpoint
from ray.train._internal.session import _TrainingResult
from ray.tune.experiment import Trial

from tuner.search.run import ForgetDeletedCheckpoints


def test_checkpoint_deleted_before_tune_saved_its_state_is_forgotten(tmp_path: Path) -> None:
    """As after a driver kill between Tune deleting a checkpoint and saving its state: the
    restored list names a missing folder. Without the callback, registering the next
    checkpoint raises FileNotFoundError from Ray's clean-up."""
    trial = Trial("__fake", stub=True, checkpoint_config=tune.CheckpointConfig(num_to_keep=1))
    manager = trial.run_metadata.checkpoint_manager
    folders = [tmp_path / f"checkpoint_{i:06d}" for i in range(3)]
    for folder in folders:
        folder.mkdir()
    manager._checkpoint_results = [
        _TrainingResult(Checkpoint(str(f)), {"training_iteration": i})
        for i, f in enumerate(folders[:2])
    ]
    manager._latest_checkpoint_result = manager._checkpoint_results[-1]
    shutil.rmtree(folders[0])  # deleted by Tune, still listed in the state it restored

    newest = _TrainingResult(Checkpoint(str(folders[2])), {"training_iteration": 2})
    ForgetDeletedCheckpoints().on_checkpoint(0, [trial], trial, checkpoint=newest.checkpoint)
    manager.register_checkpoint(newest)

    assert [r.checkpoint.path for r in manager.best_checkpoint_results] == [str(folders[2])]
    assert not folders[1].exists() and folders[2].exists()  # Tune's own clean-up went on
