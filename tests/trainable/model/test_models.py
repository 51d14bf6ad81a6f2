from __future__ import annotations

import pytest
import torch
from torch import nn

from trainable.config import build_config
from trainable.model.registry import MODELS, build_model, register


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


def test_fastnet_is_the_airbench94_layout_at_width_64() -> None:
    net = build_model("fastnet", num_classes=10, width=64, depth=2, dropout=0.0)
    n_params = sum(p.numel() for p in net.parameters())
    # airbench94 has ~1.97M parameters; ours differs only in the learned 3x3 stem.
    assert 1.9e6 < n_params < 2.1e6
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 64, 256, 256, 256, 256]
    with torch.no_grad():
        assert net.eval()(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def test_fastnet_depth_is_convs_per_block() -> None:
    def n_convs(depth: int) -> int:
        net = build_model("fastnet", 10, 8, depth, 0.0)
        return sum(isinstance(m, nn.Conv2d) for m in net.modules())

    assert [n_convs(d) for d in (1, 2, 3)] == [4, 7, 10]


def test_fastnet_trains_on_cpu() -> None:
    torch.manual_seed(0)
    net = build_model("fastnet", num_classes=4, width=16, depth=2, dropout=0.0).to(
        memory_format=torch.channels_last
    )
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    x = torch.randn(32, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (32,))
    losses = []
    for _ in range(8):  # one fixed batch: the loss must fall if gradients flow end to end
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert all(p.grad is not None for p in net.parameters())
