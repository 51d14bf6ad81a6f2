"""The network options (trainable/model/layers.py, network.py) and lookahead: what each one does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainable.config import LookaheadConfig, ModelConfig, build_config
from trainable.errors import ConfigError
from trainable.model import layers
from trainable.model.layers import Whitening, filters_from_covariance, patch_covariance
from trainable.model.network import build_network, init_from_data, set_whiten_bias_trainable
from trainable.training.horizon import Horizon
from trainable.training.lookahead import Lookahead


def correlated_images(n: int = 400, size: int = 12) -> torch.Tensor:
    """Smooth, channel-mixed noise: neighbouring pixels and channels strongly correlated."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size + 2, size + 2, generator=g)
    x = nn.functional.avg_pool2d(x, 3, stride=1)  # spatial correlation
    mix = torch.tensor([[1.0, 0.8, 0.6], [0.0, 1.0, 0.7], [0.0, 0.0, 1.0]])
    return torch.einsum("dc,nchw->ndhw", mix, x) + 0.3


def covariance(responses: torch.Tensor) -> torch.Tensor:
    flat = responses.permute(0, 2, 3, 1).reshape(-1, responses.shape[1]).double()
    return flat.T @ flat / len(flat)  # uncentred, as the whitening is computed


def patches(images: torch.Tensor, kernel: int) -> torch.Tensor:
    """Every k x k patch of every image, flattened channel-major: (N x H' x W', C x k x k)."""
    c = images.shape[1]
    p = images.unfold(2, kernel, 1).unfold(3, kernel, 1)  # N, C, H', W', k, k
    return p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kernel * kernel)


def test_patch_covariance_sums_its_blocks_to_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    x = correlated_images()
    flat = patches(x, 2).double()
    whole = flat.T @ flat / len(flat)  # every patch at once, in float64
    # 7 images a block: the 400 images in 58 blocks, the last of one image
    monkeypatch.setattr(layers, "_PATCH_BLOCK_VALUES", 7 * 12 * 11 * 11)
    assert torch.allclose(patch_covariance(x, 2).double(), whole, atol=1e-5)


def test_whitening_filters_whiten_the_patches() -> None:
    x = correlated_images()
    raw = covariance(patches(x, 2).T.reshape(12, len(x), 11, 11).permute(1, 0, 2, 3))
    assert (raw - torch.diag(raw.diag())).abs().max() > 0.1  # far from white to begin with
    filters = filters_from_covariance(patch_covariance(x, 2), 3, 2, eps=1e-8)
    assert filters.shape == (12, 3, 2, 2)
    white = covariance(nn.functional.conv2d(x, filters))
    assert torch.allclose(white, torch.eye(12, dtype=white.dtype), atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_whitening_conv_runs_in_float32_under_autocast(dtype: torch.dtype) -> None:
    # A grayscale image as 3 equal channels: 8 of a 2 x 2 patch's 12 directions unspanned,
    # their filters scaled by 1/sqrt(eps) and cancelling between channels. In bf16 the
    # cancellation failed and the digits folder's default config diverged.
    gray = correlated_images()[:, :1].expand(-1, 3, -1, -1).contiguous()
    layer = Whitening(3, 2)
    layer.init_from_covariance(patch_covariance(gray, 2), eps=5e-4)
    exact = layer(gray)
    with torch.autocast("cpu", dtype=dtype):
        out = layer(gray.to(dtype))  # a previous layer's half-precision output, too
    assert out.dtype == torch.float32
    # only the input's own rounding remains, not the filters' amplified by ~45
    reference = layer(gray.to(dtype).float())
    assert torch.equal(out, reference)
    assert (out - exact).abs().max() < 0.1 * exact.abs().max()


def test_whitening_stem_is_initialised_from_the_training_images() -> None:
    cfg = ModelConfig(name="fastnet", width=8, stem="whiten")
    net = build_network(cfg, 4)
    layer = net[0]
    assert isinstance(layer, Whitening) and layer.out_channels == 24
    assert not layer.weight.requires_grad and layer.bias is not None and layer.bias.requires_grad
    images = (torch.rand(300, 16, 16, 3) * 255).to(torch.uint8).numpy()
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    init_from_data(net, cfg, images, mean, std)
    half = layer.weight[:12]
    assert torch.equal(layer.weight[12:], -half)  # each filter and its negation
    x = torch.from_numpy(images).permute(0, 3, 1, 2) / 255 - torch.tensor(mean).view(1, 3, 1, 1)
    x = x / torch.tensor(std).view(1, 3, 1, 1)
    white = covariance(nn.functional.conv2d(x, half))
    # eigenvalue / (eigenvalue + eps): ~1 for every direction of these images
    assert torch.allclose(white, torch.eye(12, dtype=white.dtype), atol=0.02)


def test_whiten_bias_trains_for_its_epochs_only() -> None:
    cfg = ModelConfig(name="fastnet", width=8, stem="whiten", whiten={"bias_epochs": 2})
    net = build_network(cfg, 4)
    trainable = []
    for epoch in (1, 2, 3, 4):
        set_whiten_bias_trainable(net, cfg, epoch)
        trainable.append(net[0].bias.requires_grad)
    assert trainable == [True, True, False, False]


def test_dirac_init_makes_each_conv_pass_its_input_through() -> None:
    cfg = ModelConfig(name="fastnet", width=8, conv_init="dirac")
    torch.manual_seed(0)
    net = build_network(cfg, 4)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    x = torch.randn(2, 3, 8, 8)
    for conv in convs:
        x_in = torch.randn(2, conv.in_channels, 8, 8)
        out = conv(x_in)
        if conv.out_channels >= conv.in_channels:
            assert torch.allclose(out[:, : conv.in_channels], x_in, atol=1e-6)
    default = build_network(ModelConfig(name="fastnet", width=8), 4)
    first = next(m for m in default.modules() if isinstance(m, nn.Conv2d))
    assert not torch.allclose(first(x)[:, :3], x, atol=1e-2)


def test_batchnorm_options_reach_every_bn_layer() -> None:
    cfg = ModelConfig(
        name="fastnet", width=8, depth=2, bn_momentum=0.4, bn_eps=1e-12, bn_weight_frozen=True
    )
    net = build_network(cfg, 4)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 7  # the stem's and two per block
    assert all(m.momentum == 0.4 and m.eps == 1e-12 and not m.weight.requires_grad for m in bns)
    bn = bns[0]
    x = torch.randn(16, bn.num_features, 4, 4) + 3.0
    bn.train()(x)
    # torch's convention: the new batch is weighted by momentum.
    assert torch.allclose(bn.running_mean, 0.4 * x.mean(dim=(0, 2, 3)), atol=1e-5)


def test_lookahead_pulls_the_weights_towards_their_ema() -> None:
    net = nn.Linear(2, 1, bias=False)
    cfg = LookaheadConfig(enabled=True, every_steps=2, decay=0.9, ramp_power=1.0)
    la = Lookahead(net, cfg, Horizon(5))
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)  # an optimizer step
    la.after_step()  # step 1: not a lookahead step
    assert torch.equal(net.weight, start + 1.0)
    with torch.no_grad():
        net.weight.add_(1.0)
    la.after_step()  # step 2: ema = d * ema + (1 - d) * net; net = ema
    d = 0.9**2 * (2 / 5)
    expected = d * start + (1 - d) * (start + 2.0)
    assert torch.allclose(net.weight, expected) and torch.allclose(la.ema[0], expected)
    assert (net.weight - start).abs().max() < 2.0  # pulled back from where the step took it
    with torch.no_grad():
        net.weight.add_(1.0)
    la.after_step()  # step 3
    with torch.no_grad():
        net.weight.add_(1.0)
    la.after_step()  # step 4
    d4 = 0.9**2 * (4 / 5)
    ema4 = d4 * expected + (1 - d4) * (expected + 2.0)
    assert torch.allclose(net.weight, ema4)
    with torch.no_grad():
        net.weight.add_(5.0)
    la.after_step()  # step 5, the last: the net takes the EMA
    assert torch.allclose(net.weight, ema4)


def test_lookahead_state_round_trips() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    la = Lookahead(net, LookaheadConfig(enabled=True, every_steps=1), Horizon(10))
    with torch.no_grad():
        net[0].weight.add_(1.0)
    la.after_step()
    other = Lookahead(net, LookaheadConfig(enabled=True, every_steps=1), Horizon(10))
    other.load_state_dict(la.state_dict())
    assert other.steps == 1 and all(
        torch.equal(a, b) for a, b in zip(la.ema, other.ema, strict=True)
    )
    assert "1.running_mean" in la.state_dict()["ema"]  # BN statistics are averaged too


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["model.stem=whiten"], ["model.stem=whiten", "model.name=fastnet", "'smallnet'"]),
        (["model.whiten.eps=0.1"], ["model.whiten", "model.stem=whiten"]),
        (
            ["model.name=fastnet", "model.stem=whiten", "model.whiten.eps=0"],
            ["eps", "greater than 0"],
        ),
        (["model.conv_init=xavier"], ["model.conv_init", "xavier", "'dirac'"]),
        (["model.bn_momentum=0"], ["model.bn_momentum", "0", "greater than 0"]),
        (["lookahead.decay=1"], ["lookahead.decay", "1", "less than 1"]),
        (["lookahead.every_steps=0"], ["lookahead.every_steps", "0", "greater than or equal to 1"]),
    ],
)
def test_network_errors_name_key_value_and_range(overrides: list[str], needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(None, overrides)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_evaluation_rebuilds_a_whitened_net_from_its_checkpoint() -> None:
    cfg = ModelConfig(name="fastnet", width=8, stem="whiten")
    trained = build_network(cfg, 4)
    images = (np.random.default_rng(0).random((50, 16, 16, 3)) * 255).astype(np.uint8)
    init_from_data(trained, cfg, images, [0.5] * 3, [0.25] * 3)
    fresh = build_network(cfg, 4)
    fresh.load_state_dict(trained.state_dict())  # the fixed filters travel in the state dict
    assert torch.equal(fresh[0].weight, trained[0].weight)


@pytest.mark.parametrize("stem", ["whiten", "conv"])
@pytest.mark.parametrize("size", [8, 9, 12, 32, 64])
def test_fastnet_pools_only_while_the_map_has_pixels_to_pool(stem: str, size: int) -> None:
    """8 px through a whitening stem (7 px) once crashed at the third pool (1 px to 0); now
    small inputs pool fewer times, 32 px pools in all three blocks as airbench does, and the
    weights keep their names whatever the size (a checkpoint loads into any build)."""
    cfg = ModelConfig(name="fastnet", width=4, depth=1, stem=stem)  # type: ignore[arg-type]
    net = build_network(cfg, 5, input_size=size).eval()
    assert net(torch.randn(2, 3, size, size)).shape == (2, 5)
    pools = sum(isinstance(m, nn.MaxPool2d) for m in net.modules())
    side = size - 1 if stem == "whiten" else size
    assert pools == min(3, int(np.floor(np.log2(side))))  # halve while 2+ pixels remain
    assert net.state_dict().keys() == build_network(cfg, 5).state_dict().keys()
