"""One epoch on a real subset of the CIFAR-10 JPEG copy (lossy, quality 75), when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CIFAR_JPEG
from trainable.config import build_config
from trainable.data.datasets import CIFAR10_CLASSES
from trainable.training.engine import train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CIFAR_JPEG / "train").is_dir(), reason=f"{CIFAR_JPEG} not present"),
]


def test_one_epoch_on_a_real_subset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real decode cache (~/.cache/hpsearch), so CI machines decode the 60k JPEGs once.
    monkeypatch.delenv("HPSEARCH_CACHE")
    cfg = build_config(
        {
            "dataset": {"root": str(CIFAR_JPEG), "train_subset": 2000, "val_subset": 500},
            "model": {"width": 16},
            "epochs": 2,
            "batch_size": 128,
            "optimizer": {"lr": 0.01},
            "device": "cpu",
        }
    )
    result = train(cfg, tmp_path, report=lambda *_: None)
    assert result.status == "completed"
    assert result.val_metrics is not None
    assert list(result.val_metrics["per_class"]) == list(CIFAR10_CLASSES)
    assert result.val_metrics["num_images"] == 500
    assert result.best_metric > 0.2  # chance is 0.1
