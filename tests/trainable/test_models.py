from __future__ import annotations

import pytest
import torch
from torch import nn

from trainable.config import build_config
from trainable.models import MODELS, build_model, register


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("size", [16, 32])
def test_every_model_maps_images_to_logits(name: str, size: int) -> None:
    net = build_model(name, num_classes=7, width=8, depth=2, dropout=0.2).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7)


def test_smallnet_width_and_depth_change_the_network() -> None:
    def params(width: int, depth: int) -> int:
        return sum(p.numel() for p in build_model("smallnet", 10, width, depth, 0.0).parameters())

    assert params(16, 3) > params(8, 3)
    assert params(8, 3) > params(8, 2)


def test_registering_a_model_is_one_function() -> None:
    @register("tiny_linear")
    def tiny_linear(num_classes: int, width: int, depth: int, dropout: float) -> nn.Module:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, num_classes))

    try:
        assert build_config(None, ["model.name=tiny_linear"]).model.name == "tiny_linear"
        assert build_model("tiny_linear", 3, 1, 1, 0.0)(torch.zeros(1, 3, 8, 8)).shape == (1, 3)
    finally:
        del MODELS["tiny_linear"]
