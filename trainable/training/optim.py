"""Optimizer and learning-rate schedule, built from the config.

Optimizers: AdamW (fused; the default) and Nesterov SGD in airbench94's decoupled form.
Schedules, stepped once per batch: OneCycleLR (the default) and a triangular warm-up/decay.
Adding one is a branch in `build_optimizer` / `build_schedule` and its config section; the
training loop only sees a `torch.optim.Optimizer` and an `LRScheduler`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from trainable.config import SGDConfig, TrainConfig, TriangularConfig
from trainable.errors import ConfigError
from trainable.training.horizon import Horizon


def sgd_hyperparameters(sgd: SGDConfig, batch_size: int) -> tuple[float, float]:
    """Torch's (lr, weight_decay) for `sgd`'s decoupled values, with a mean-reduced loss.

    Momentum amplifies a steady gradient's steps (Nesterov in torch: 1/(1 - m) times), so the
    per-1,024-examples rate is divided by airbench94's `kilostep_scale`, 1,024 x
    (1 + 1/(1 - m)), to keep its published values; the loss here is a batch mean, not
    airbench's sum, hence the factor batch_size: the step per example stays put when the
    batch size changes. Torch decays by lr x weight_decay per step (through the momentum
    buffer too), so weight_decay is the wanted decay per step over lr: it does not move when
    lr does.
    """
    kilostep_scale = 1024 * (1 + 1 / (1 - sgd.momentum))
    lr = sgd.lr_per_1024 * batch_size / kilostep_scale
    decay_per_step = sgd.weight_decay_per_1024 * batch_size / kilostep_scale
    return lr, decay_per_step / lr


def param_groups(
    net: nn.Module, lr: float, weight_decay: float, bn_bias_lr_scale: float
) -> list[dict[str, Any]]:
    """The trained parameters, with BatchNorm biases in a group of their own when their lr is
    scaled. Torch decays by lr x weight_decay, so that group's weight_decay is divided by the
    scale: its decay per step stays the other weights'. (One group when the scale is 1, as
    checkpoints from before this option have.)"""
    bn_biases = {
        id(m.bias)
        for m in net.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.bias is not None
    }
    if bn_bias_lr_scale == 1.0:
        bn_biases = set()
    trained = [p for p in net.parameters() if p.requires_grad]
    scaled = [p for p in trained if id(p) in bn_biases]
    rest = [p for p in trained if id(p) not in bn_biases]
    groups: list[dict[str, Any]] = [{"params": rest, "lr": lr, "weight_decay": weight_decay}]
    if scaled:
        groups.append(
            {
                "params": scaled,
                "lr": lr * bn_bias_lr_scale,
                "weight_decay": weight_decay / bn_bias_lr_scale,
            }
        )
    return groups


def scale_lr(config: TrainConfig, factor: float) -> TrainConfig:
    """The same config with its learning rate times `factor` (AdamW's `lr`, or SGD's
    `lr_per_1024`); everything else, the weight decay included, unchanged."""
    o = config.optimizer
    if o.name == "sgd":
        sgd = o.sgd.model_copy(update={"lr_per_1024": o.sgd.lr_per_1024 * factor})
        optimizer = o.model_copy(update={"sgd": sgd})
    else:
        optimizer = o.model_copy(update={"lr": o.lr * factor})
    return config.model_copy(update={"optimizer": optimizer})


def build_optimizer(net: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    o = config.optimizer
    if o.name == "sgd":
        lr, wd = sgd_hyperparameters(o.sgd, config.batch_size)
        groups = param_groups(net, lr, wd, o.bn_bias_lr_scale)
        # Fused for the same reason as AdamW below: under fp16's GradScaler an unfused step
        # reads the found-inf flag back every step (tests/trainable/training/test_syncs.py).
        return torch.optim.SGD(groups, lr=lr, momentum=o.sgd.momentum, nesterov=True, fused=True)
    return torch.optim.AdamW(
        param_groups(net, o.lr, o.weight_decay, o.bn_bias_lr_scale),
        lr=o.lr,
        betas=o.betas,
        weight_decay=o.weight_decay,
        # Fused on the CPU and on CUDA alike: one kernel for all parameters, and no host read
        # per step (the unfused CPU path reads each Adam step counter with .item(), and a
        # GradScaler reads its found-inf flag before an unfused step); tests/trainable/training/test_syncs.py.
        fused=True,
    )


def triangular(
    total_steps: int, cfg: TriangularConfig, horizon: Horizon | None = None
) -> Callable[[int], float]:
    """The lr multiple at each step: `start_factor` up to 1 over the first `peak_fraction`
    of the steps, then linearly down to `end_factor` at the last. With a `horizon` the step
    is first mapped onto the planned `total_steps` (a deadline may have re-planned them)."""
    warm = int(total_steps * cfg.peak_fraction)
    cool = max(total_steps - warm, 1)

    def factor(real_step: int) -> float:
        step = horizon.virtual(real_step) if horizon is not None else real_step
        if step < warm:
            frac = step / warm
            return cfg.start_factor * (1 - frac) + frac
        frac = min((step - warm) / cool, 1.0)
        return (1 - frac) + cfg.end_factor * frac

    return factor


def build_schedule(
    opt: torch.optim.Optimizer,
    config: TrainConfig,
    steps_per_epoch: int,
    horizon: Horizon | None = None,
) -> torch.optim.lr_scheduler.LRScheduler:
    """The config's schedule; the triangular one follows `horizon`'s re-plans (a closure:
    LambdaLR saves no function in its state, the checkpoint saves the horizon)."""
    s = config.schedule
    if s.name == "triangular":
        factor = triangular(config.epochs * steps_per_epoch, s.triangular, horizon)
        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=[g["lr"] for g in opt.param_groups],
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        pct_start=s.pct_start,
        div_factor=s.div_factor,
        final_div_factor=s.final_div_factor,
        anneal_strategy=s.anneal_strategy,
        # OneCycle also cycles AdamW's beta1 (as before this option); SGD's momentum is part
        # of its decoupled learning rate, so it stays fixed.
        cycle_momentum=config.optimizer.name == "adamw",
    )


def replannable(config: TrainConfig) -> bool:
    """Whether a deadline can re-plan this config's epochs mid-run (`horizon.py`): OneCycleLR
    fixes its steps when built."""
    return config.schedule.name == "triangular"


def check_schedule(config: TrainConfig, steps_per_epoch: int) -> None:
    """OneCycleLR divides by (warm-up steps - 1): a warm-up of exactly one step raises
    ZeroDivisionError when the schedule starts. Refused before anything is written, in one
    line. (A shorter warm-up, e.g. in a 1-epoch smoke run, only starts the schedule at its peak.)"""
    total = config.epochs * steps_per_epoch
    if (
        config.schedule.name == "onecycle" and float(config.schedule.pct_start * total) == 1.0
    ):  # the product torch compares
        raise ConfigError(
            f"schedule.pct_start={config.schedule.pct_start} x {total} optimizer steps "
            f"(epochs={config.epochs} x {steps_per_epoch} batches) is a warm-up of exactly one "
            "step, on which torch's OneCycleLR divides by zero; change epochs, batch_size or "
            "schedule.pct_start"
        )
