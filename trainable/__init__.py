"""A production-minded PyTorch image-classification trainer; knows nothing about Ray.

The public names are imported on first use, so `import trainable` (and `python -m trainable
predict`, which serves an exported model without torch) loads nothing heavy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainable.config import TrainConfig, build_config, load_config
    from trainable.training.engine import TrainResult, train
    from trainable.training.evaluation import evaluate

__all__ = ["TrainConfig", "TrainResult", "build_config", "evaluate", "load_config", "train"]

_WHERE = {
    "TrainConfig": "trainable.config",
    "build_config": "trainable.config",
    "load_config": "trainable.config",
    "TrainResult": "trainable.training.engine",
    "train": "trainable.training.engine",
    "evaluate": "trainable.training.evaluation",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'trainable' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
