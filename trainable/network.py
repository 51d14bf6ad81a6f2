"""The network a config describes: built the same way for training and for evaluation."""

from __future__ import annotations

from torch import nn

from trainable.config import ModelConfig
from trainable.models import build_model


def build_network(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """The registered backbone; weights as initialised (a checkpoint's are loaded over them)."""
    return build_model(cfg.name, num_classes, cfg.width, cfg.depth, cfg.dropout)
