"""The optimizers and schedules of trainable/training/optim.py: what each setting does to the steps."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from trainable.config import SGDConfig, TrainConfig, TriangularConfig, build_config
from trainable.errors import ConfigError
from trainable.model.network import build_network
from trainable.training.optim import (
    build_optimizer,
    build_schedule,
    scale_lr,
    sgd_hyperparameters,
    triangular,
)

TinyConfig = Callable[..., TrainConfig]


def test_sgd_values_are_airbench94s_at_batch_1024() -> None:
    lr, wd = sgd_hyperparameters(SGDConfig(), 1024)
    # 11.5 per 1024 examples / (1 + 1/(1 - 0.85)) with a mean loss over 1024 examples.
    assert lr == pytest.approx(11.5 / (1 + 1 / 0.15)) and lr == pytest.approx(1.5)
    # Decay per step = 0.0153 * 1024 / kilostep_scale; torch's weight_decay is that over lr.
    assert lr * wd == pytest.approx(0.0153 * 1024 / (1024 * (1 + 1 / 0.15)))


def test_sgd_lr_follows_batch_size_and_momentum_as_decoupled() -> None:
    base = SGDConfig(lr_per_1024=8.0, momentum=0.5, weight_decay_per_1024=0.01)
    lr_512, wd_512 = sgd_hyperparameters(base, 512)
    lr_2048, wd_2048 = sgd_hyperparameters(base, 2048)
    # A mean loss: 4x the batch, 4x the lr, so every example moves the weights alike.
    assert lr_2048 == pytest.approx(4 * lr_512)
    # Decay per step grows with the examples per step, but never with lr.
    assert lr_2048 * wd_2048 == pytest.approx(4 * lr_512 * wd_512)
    faster = base.model_copy(update={"momentum": 0.9})
    # More momentum, a proportionally smaller torch lr: (1 + 1/0.5) / (1 + 1/0.1) = 3/11.
    assert sgd_hyperparameters(faster, 512)[0] == pytest.approx(lr_512 * 3 / 11)


def _decay_only_trajectory(lr_per_1024: float) -> list[float]:
    config = build_config(
        None,
        [
            "optimizer.name=sgd",
            f"optimizer.sgd.lr_per_1024={lr_per_1024}",
            "optimizer.sgd.weight_decay_per_1024=0.5",
            "batch_size=256",
        ],
    )
    net = nn.Linear(1, 1, bias=False)
    nn.init.ones_(net.weight)
    opt = build_optimizer(net, config)
    out = []
    for _ in range(5):
        opt.zero_grad()
        (net.weight * 0.0).sum().backward()  # a zero gradient: only weight decay moves it
        opt.step()
        out.append(float(net.weight.detach()))
    return out


def test_sgd_weight_decay_is_independent_of_the_learning_rate() -> None:
    slow, fast = _decay_only_trajectory(2.0), _decay_only_trajectory(20.0)
    assert slow == pytest.approx(fast, rel=1e-6)
    assert slow[-1] < slow[0] < 1.0  # and it does decay


def _one_step_deltas(scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    config = build_config(
        None,
        [
            "model.name=fastnet",
            "model.width=8",
            "model.bn_weight_frozen=true",
            "optimizer.name=sgd",
            "optimizer.sgd.weight_decay_per_1024=0",
            f"optimizer.bn_bias_lr_scale={scale}",
            "batch_size=8",
        ],
    )
    torch.manual_seed(0)
    net = build_network(config.model, 3)
    bn = net[1]
    conv, bias, weight = net[0].weight.clone(), bn.bias.clone(), bn.weight.clone()
    opt = build_optimizer(net, config)
    torch.manual_seed(1)
    loss = nn.functional.cross_entropy(
        net(torch.randn(8, 3, 16, 16)), torch.tensor([0, 1, 2] * 2 + [0, 1])
    )
    loss.backward()
    opt.step()
    assert torch.equal(bn.weight, weight) and not bn.weight.requires_grad  # frozen scale
    return net[0].weight - conv, bn.bias - bias, torch.tensor(len(opt.param_groups))


def test_bn_bias_lr_scale_multiplies_only_the_bn_bias_steps() -> None:
    conv_1, bias_1, groups_1 = _one_step_deltas(1.0)
    conv_64, bias_64, groups_64 = _one_step_deltas(64.0)
    assert (int(groups_1), int(groups_64)) == (
        1,
        2,
    )  # one group when unscaled: old checkpoints load
    assert torch.allclose(conv_64, conv_1)
    assert bias_1.abs().sum() > 0
    assert torch.allclose(bias_64, 64 * bias_1, rtol=1e-4, atol=1e-7)


def test_triangular_schedule_warms_up_then_decays_linearly() -> None:
    cfg = TriangularConfig(start_factor=0.2, peak_fraction=0.25, end_factor=0.07)
    f = triangular(100, cfg)
    assert (
        f(0) == pytest.approx(0.2) and f(25) == pytest.approx(1.0) and f(100) == pytest.approx(0.07)
    )
    assert f(12) == pytest.approx(0.2 + 0.8 * 12 / 25)  # linear on the way up
    assert f(60) == pytest.approx(1 - 0.93 * 35 / 75)  # and on the way down
    ups = [f(s) for s in range(26)]
    downs = [f(s) for s in range(25, 101)]
    assert ups == sorted(ups) and downs == sorted(downs, reverse=True)


def test_triangular_schedule_scales_every_group_of_the_optimizer() -> None:
    config = build_config(
        None,
        [
            "model.name=fastnet",
            "model.width=8",
            "optimizer.name=sgd",
            "optimizer.bn_bias_lr_scale=64",
            "schedule.name=triangular",
            "epochs=2",
        ],
    )
    opt = build_optimizer(build_network(config.model, 3), config)
    peak = [g["lr"] for g in opt.param_groups]
    sched = build_schedule(opt, config, steps_per_epoch=50)
    lrs = []
    for _ in range(100):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx([0.2 * p for p in peak])
    assert max(lrs, key=lambda x: x[0]) == pytest.approx(peak)
    assert lrs[int(100 * 0.23)] == pytest.approx(peak)
    # Momentum is part of the decoupled lr: no schedule may move it.
    assert all(g["momentum"] == 0.85 for g in opt.param_groups)


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["optimizer.name=sgd", "optimizer.lr=0.1"], ["optimizer.lr=0.1", "optimizer.name=adamw"]),
        (["optimizer.sgd.momentum=0.9"], ["optimizer.sgd", "optimizer.name=sgd"]),
        (
            ["optimizer.name=sgd", "optimizer.sgd.momentum=1"],
            ["optimizer.sgd.momentum", "1", "less than 1"],
        ),
        (["optimizer.bn_bias_lr_scale=0"], ["optimizer.bn_bias_lr_scale", "0", "greater than 0"]),
        (
            ["schedule.name=triangular", "schedule.pct_start=0.3"],
            ["schedule.pct_start=0.3", "onecycle"],
        ),
        (
            ["schedule.triangular.end_factor=0.1"],
            ["schedule.triangular", "schedule.name=triangular"],
        ),
        (
            ["schedule.name=triangular", "schedule.triangular.peak_fraction=1"],
            ["peak_fraction", "1", "less than 1"],
        ),
        (["schedule.name=cosine"], ["schedule.name", "cosine", "'onecycle'"]),
    ],
)
def test_optimizer_and_schedule_errors_name_key_value_and_range(
    overrides: list[str], needles: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(None, overrides)
    assert "\n" not in str(info.value)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_scale_lr_scales_the_rate_of_either_optimizer_and_nothing_else(
    tiny_config: TinyConfig,
) -> None:
    adamw = tiny_config(optimizer={"name": "adamw", "lr": 0.01, "weight_decay": 0.1})
    halved = scale_lr(adamw, 0.5)
    assert halved.optimizer.lr == pytest.approx(0.005) and halved.optimizer.weight_decay == 0.1
    sgd = tiny_config(optimizer={"name": "sgd", "sgd": {"lr_per_1024": 8.0}})
    quarter = scale_lr(sgd, 0.25)
    assert quarter.optimizer.sgd.lr_per_1024 == pytest.approx(2.0)
    assert quarter.optimizer.sgd.weight_decay_per_1024 == sgd.optimizer.sgd.weight_decay_per_1024
    assert quarter.model_copy(update={"optimizer": sgd.optimizer}) == sgd
