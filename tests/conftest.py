"""Shared fixtures: tiny synthetic configs that train in about a second on a CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trainable.config import TrainConfig, build_config, deep_merge

REPO = Path(__file__).resolve().parents[1]
CIFAR_JPEG = REPO.parent / "shared" / "datasets" / "cifar10-jpeg"

TINY: dict[str, Any] = {
    "dataset": {
        "name": "synthetic",
        "num_classes": 4,
        "image_size": 16,
        "synthetic_train_size": 640,
        "synthetic_test_size": 200,
        "val_fraction": 0.2,
    },
    "model": {"name": "smallnet", "width": 8, "depth": 2, "dropout": 0.0},
    "batch_size": 64,
    "eval_batch_size": 256,
    "epochs": 3,
    "device": "cpu",
    "precision": "fp32",
}


@pytest.fixture
def tiny_config() -> Callable[..., TrainConfig]:
    """`tiny_config(epochs=2, optimizer={"lr": 0.01})`: TINY with nested overrides."""

    def make(**overrides: Any) -> TrainConfig:
        return build_config(deep_merge(TINY, overrides))

    return make


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decoded-dataset caches go to a per-session temp folder unless a test opts into the real one.
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
