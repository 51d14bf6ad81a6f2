"""Retraining a seed: a diverging run is trained again from scratch at a lower learning rate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from trainable.config import TrainConfig
from trainable.data.datasets import load_splits
from trainable.files.checkpoint import SavePolicy
from trainable.vocab import Status
from tuner.results.layout import ResultsDir
from tuner.stages.retrain import LR_SCALE_FILE, _Progress, _retrain_one, _train_until_stable

EXPLODES = {"name": "adamw", "lr": 10.0, "weight_decay": 1.0}
EVERY_EPOCH = SavePolicy()


def test_a_diverging_seed_is_trained_again_at_a_lower_rate(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    # AdamW at lr 10 with decoupled weight decay 1 multiplies the weights by -9 a step: the
    # loss is inf within the first epoch's 32 steps. At 1e-4 of that rate it trains.
    config = tiny_config(epochs=2, batch_size=16, optimizer=EXPLODES)
    data = load_splits(config.dataset)
    result, scale, diverged = _train_until_stable(config, tmp_path, data, EVERY_EPOCH, (1.0, 1e-4))
    assert diverged == [1.0] and scale == 1e-4
    assert result.status == Status.COMPLETED and result.epochs_run == 2
    assert (tmp_path / LR_SCALE_FILE).read_text() == repr(1e-4)
    # The run folder holds the retry's training, not the diverged one's state.
    assert result.best_checkpoint.is_file()
    # Run again in the same folder (a resumed retrain): it goes on at the recorded scale.
    again, scale_again, diverged_again = _train_until_stable(
        config, tmp_path, data, EVERY_EPOCH, (1.0, 1e-4)
    )
    assert scale_again == 1e-4 and diverged_again == [1.0]
    assert again.status == Status.COMPLETED


def test_the_last_scale_is_kept_when_every_rate_diverges(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    config = tiny_config(epochs=1, batch_size=16, optimizer=EXPLODES)
    data = load_splits(config.dataset)
    result, scale, diverged = _train_until_stable(config, tmp_path, data, EVERY_EPOCH, (1.0, 0.9))
    assert result.status == Status.DIVERGED and scale == 0.9 and diverged == [1.0]


def test_epoch_lines_are_throttled_but_the_first_and_last_always_shown(
    tiny_config: Callable[..., TrainConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    """560 epochs of a tenth of a second on a small folder once printed 560 lines."""
    config = tiny_config(epochs=50)
    report = _Progress(config, every_s=3600)
    for epoch in range(1, 51):
        report({"epoch": epoch, "train_loss": 0.5, "epoch_s": 0.1, "images_per_s": 9e3})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1].split()[1] for line in lines] == ["1/50", "50/50"]
    every = _Progress(config, every_s=0)
    for epoch in range(1, 4):
        every({"epoch": epoch, "train_loss": 0.5, "epoch_s": 0.1, "images_per_s": 9e3})
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_a_seed_writes_its_checkpoint_every_interval_not_every_epoch(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refit seed with the spec's `checkpoint_interval_s`: best/ and last/ once each, at its
    end, for a run shorter than the interval; with 0, both every epoch."""
    from trainable.files import checkpoint

    written: list[str] = []
    real = checkpoint.save_atomic
    monkeypatch.setattr(
        checkpoint,
        "save_atomic",
        lambda state, path: written.append(path.parent.name) or real(state, path),
    )
    config = tiny_config(epochs=3, dataset={"val_fraction": 0.0})
    data = load_splits(config.dataset)
    outcome = _retrain_one(config.to_dict(), ResultsDir(tmp_path / "a"), data, 0.0, 3600.0)
    assert outcome["status"] == str(Status.COMPLETED) and sorted(written) == ["best", "last"]
    written.clear()
    _retrain_one(config.to_dict(), ResultsDir(tmp_path / "b"), data, 0.0, 0.0)
    assert sorted(written) == ["best"] * 3 + ["last"] * 3


def test_a_seed_with_a_deadline_exports_the_epochs_it_trained(
    recipe_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    """A budgeted run's final training re-plans its epochs (here from 4 to the deadline's cap
    of 6): the outcome names both, and the exported config and test summary the trained ones,
    so `trainable train --config best_config.yaml` trains what was measured."""
    import time

    import yaml

    from trainable.training.horizon import Deadline
    from tuner.stages.retrain import export

    config = recipe_config(epochs=4, dataset={"val_fraction": 0.0})
    results = ResultsDir(tmp_path)
    deadline = Deadline(end_at=time.time() + 10**6, max_epochs=6)
    outcome = _retrain_one(
        config.to_dict(), results, load_splits(config.dataset), 0.0, 3600.0, deadline
    )
    assert outcome["epochs"] == 6 and outcome["epochs_planned"] == 4
    summary = export(config, [outcome], results)
    assert summary["epochs"] == 6
    assert yaml.safe_load(results.best_config().read_text())["epochs"] == 6
