"""tuner.planning.calibrate: the planned model trained briefly, at the batch it is asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainable.training import engine
from tuner.planning.calibrate import CALIBRATION_STEPS, images_per_s
from tuner.planning.recipe import Architecture, base_config


def test_calibration_trains_at_the_given_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    real = engine.train

    def spy(config: Any, out: Any, **kwargs: Any) -> Any:
        seen.append(config)
        return real(config, out, **kwargs)

    monkeypatch.setattr(engine, "train", spy)
    arch = Architecture(8, 8, "cpu", 1, 1, 0.0)
    base = base_config(arch, Path("unused"), 128, 12, 32)
    speed = images_per_s(base, arch, 3, 1, batch=32)
    (config,) = seen
    assert config.batch_size == 32 and speed > 0
    # CALIBRATION_STEPS batches an epoch, whatever the batch
    assert int(config.dataset.synthetic_train_size * 0.9) == 32 * CALIBRATION_STEPS
