"""The training epoch: one pass over the batches, no host read until its end.

`train_epoch` is public so benchmarks time the product's exact hot loop; `TrainHooks` lets a
caller of `engine.train` wrap each phase of each epoch (timers, op counters) without patching.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainable.training.runtime import Runtime

Batch = tuple[torch.Tensor, torch.Tensor]
TRAIN, EVALUATION = "train", "evaluation"  # the phases TrainHooks.around sees


@dataclass(frozen=True)
class EpochStats:
    """One training epoch, read back from the device once at its end."""

    loss: float  # mean training loss (with label smoothing)
    acc: float
    finite: bool  # every batch's loss was finite
    images: int
    first_step_s: float  # the first step's seconds when asked (compiling), else 0


def _no_phase(_phase: str, _epoch: int) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


def _no_stats(_epoch: int, _stats: EpochStats) -> None:
    return None


@dataclass(frozen=True)
class TrainHooks:
    """A view into `engine.train` for benchmarks; nothing here changes what is trained."""

    # Entered around each phase ("train", "evaluation") of each epoch: a timer, an op counter.
    around: Callable[[str, int], contextlib.AbstractContextManager[Any]] = _no_phase
    # Called with each epoch's training statistics right after its training phase.
    epoch_stats: Callable[[int, EpochStats], None] = _no_stats


@dataclass
class Stepper:
    """Everything one optimizer step touches, in order: backward (scaled), step, schedule."""

    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    after_step: list[Callable[[], None]] = field(default_factory=list)

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        for fn in self.after_step:  # e.g. lookahead: runs between steps, on the device
            fn()


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    stepper: Stepper,
    criterion: nn.Module,
    rt: Runtime,
    fmt: torch.memory_format,
    time_first_step: bool = False,
) -> EpochStats:
    """One epoch. With `time_first_step`, the first step is synchronised and timed apart:
    the one host sync of the epoch besides the final read, only when compiling."""
    model.train()
    loss_sum = torch.zeros((), device=rt.device)
    correct = torch.zeros((), device=rt.device, dtype=torch.long)
    finite = torch.ones((), device=rt.device, dtype=torch.bool)
    n, first_step_s, t0 = 0, 0.0, time.perf_counter()
    for step, (x, y) in enumerate(batches):
        if step == 1 and time_first_step:
            sync(rt)
            first_step_s = time.perf_counter() - t0
        x = x.to(rt.device, non_blocking=True, memory_format=fmt)
        y = y.to(rt.device, non_blocking=True)
        with rt.autocast():
            logits = model(x)
            loss = criterion(logits, y)
        stepper.step(loss)
        loss = loss.detach().float()
        finite &= torch.isfinite(loss)
        loss_sum += loss * y.numel()
        correct += (logits.argmax(1) == y).sum()
        n += y.numel()
    loss_total, correct_total, all_finite = torch.stack(
        [loss_sum, correct.float(), finite.float()]
    ).tolist()
    return EpochStats(loss_total / n, correct_total / n, bool(all_finite), n, first_step_s)


def sync(rt: Runtime) -> None:
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)


def compile_eval_graph(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    rt: Runtime,
    fmt: torch.memory_format,
) -> float:
    """Seconds to compile the eval-mode graph, on one validation batch. Eval mode with no
    gradients changes no weight and no BatchNorm statistic, so training is unaffected."""
    t0 = time.perf_counter()
    x, _ = next(iter(batches))
    model.eval()
    with torch.no_grad(), rt.autocast():
        model(x.to(rt.device, memory_format=fmt))
    sync(rt)
    return time.perf_counter() - t0
