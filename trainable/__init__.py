"""A production-minded PyTorch image-classification trainer; knows nothing about Ray."""

from trainable.config import TrainConfig, build_config, load_config
from trainable.training.engine import TrainResult, train
from trainable.training.evaluation import evaluate

__all__ = ["TrainConfig", "TrainResult", "build_config", "evaluate", "load_config", "train"]
