"""Optimizer and learning-rate schedule, built from the config.

Today: AdamW (fused) + OneCycleLR, stepped once per batch. Adding an optimizer or a schedule
is a new branch in `build_optimizer` / `build_schedule` and its config section; the training
loop only sees a `torch.optim.Optimizer` and an `LRScheduler`.
"""

from __future__ import annotations

import torch
from torch import nn

from trainable.config import TrainConfig
from trainable.errors import ConfigError


def build_optimizer(net: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    o = config.optimizer
    return torch.optim.AdamW(
        [p for p in net.parameters() if p.requires_grad],
        lr=o.lr,
        betas=o.betas,
        weight_decay=o.weight_decay,
        # Fused on the CPU and on CUDA alike: one kernel for all parameters, and no host read
        # per step (the unfused CPU path reads each Adam step counter with .item(), and a
        # GradScaler reads its found-inf flag before an unfused step); tests/trainable/test_syncs.py.
        fused=True,
    )


def build_schedule(
    opt: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    s = config.schedule
    return torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=[g["lr"] for g in opt.param_groups],
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        pct_start=s.pct_start,
        div_factor=s.div_factor,
        final_div_factor=s.final_div_factor,
        anneal_strategy=s.anneal_strategy,
    )


def check_schedule(config: TrainConfig, steps_per_epoch: int) -> None:
    """OneCycleLR divides by (warm-up steps - 1): a warm-up of exactly one step raises
    ZeroDivisionError when the schedule starts. Refused before anything is written, in one
    line. (A shorter warm-up, e.g. in a 1-epoch smoke run, only starts the schedule at its peak.)"""
    total = config.epochs * steps_per_epoch
    if float(config.schedule.pct_start * total) == 1.0:  # the product torch compares
        raise ConfigError(
            f"schedule.pct_start={config.schedule.pct_start} x {total} optimizer steps "
            f"(epochs={config.epochs} x {steps_per_epoch} batches) is a warm-up of exactly one "
            "step, on which torch's OneCycleLR divides by zero; change epochs, batch_size or "
            "schedule.pct_start"
        )
