"""Training. Knows nothing about Ray: `train(config, out_dir, report=...)`.

Per epoch: train with AdamW + OneCycleLR (stepped per batch) under autocast, evaluate on the
validation split, write `last/checkpoint.pt` (always) and `best/checkpoint.pt` (on improvement
of the monitored metric), then call `report(metrics, last_checkpoint_dir)`. Loss, accuracy
and a finite-loss flag are accumulated on the device and read once per epoch, so the hot loop
never waits for the host.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainable import checkpoint
from trainable.config import TrainConfig
from trainable.data import ArrayDataset, Splits, load_splits
from trainable.errors import ConfigError, UserError
from trainable.evaluation import eval_batches, loss_acc, predict_confusion
from trainable.loaders import (
    DeviceLoader,
    channel_stats,
    epoch_seed,
    make_dataloader,
    train_steps,
)
from trainable.metrics import summarize, write_metrics
from trainable.models import build_model
from trainable.runtime import Runtime, backend_flags, resolve
from trainable.vocab import EPOCH, FINAL, Status, improves

ReportFn = Callable[[dict[str, float], Path], None]


@dataclass
class TrainResult:
    status: Status  # COMPLETED | EARLY_STOPPED | DIVERGED
    reason: str
    epochs_run: int
    best_epoch: int
    best_metric: float
    monitor: str
    out_dir: Path
    history: list[dict[str, float]] = field(default_factory=list)
    val_metrics: dict[str, Any] | None = None

    @property
    def best_checkpoint(self) -> Path:
        return self.out_dir / "best" / checkpoint.FILENAME


@dataclass
class _EarlyStopper:
    mode: str
    min_delta: float
    patience: int | None
    best: float = math.nan
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        if improves(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience


def progress_printer(total_epochs: int) -> ReportFn:
    def report(m: dict[str, float], _ckpt: Path) -> None:
        print(
            f"epoch {int(m['epoch']):>3}/{total_epochs}  "
            f"train loss {m['train_loss']:.4f} acc {m['train_acc']:.2%}  "
            f"val loss {m['val_loss']:.4f} acc {m['val_acc']:.2%}  "
            f"lr {m['lr']:.2e}  {m['epoch_s']:.1f}s  {m['images_per_s']:.0f} img/s",
            flush=True,
        )

    return report


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    report: ReportFn | None = None,
    data: Splits | None = None,
    resume_from: str | Path | None = None,
) -> TrainResult:
    """Train `config`, writing config, checkpoints and validation metrics under `out_dir`."""
    out_dir = Path(out_dir)
    if resume_from is None and (out_dir / "last" / checkpoint.FILENAME).exists():
        raise UserError(
            f"{out_dir} already holds a training run; resume it or choose another output folder"
        )
    runtime = resolve(config)
    splits = data if data is not None else load_splits(config.dataset)
    _check_warmup(config, train_steps(len(splits.train), config.batch_size))
    report = report or progress_printer(config.epochs)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(config.to_yaml())
    with backend_flags(config, runtime):
        return _fit(config, runtime, splits, out_dir, report, resume_from)


def _fit(
    config: TrainConfig,
    rt: Runtime,
    splits: Splits,
    out_dir: Path,
    report: ReportFn,
    resume_from: str | Path | None,
) -> TrainResult:
    torch.manual_seed(config.seed)
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    net = build_model(
        config.model.name,
        len(splits.classes),
        config.model.width,
        config.model.depth,
        config.model.dropout,
    )
    net = net.to(rt.device, memory_format=fmt)  # type: ignore[call-overload]
    mean, std = channel_stats(splits.train.images)
    train_batches, set_epoch = _train_batches(config, splits.train, rt, mean, std)
    val_batches = eval_batches(config, splits.val, rt, mean, std)
    opt = torch.optim.AdamW(
        net.parameters(),
        lr=config.optimizer.lr,
        betas=config.optimizer.betas,
        weight_decay=config.optimizer.weight_decay,
        # Fused on the CPU and on CUDA alike: one kernel for all parameters, and no host read
        # per step (the unfused CPU path reads each Adam step counter with .item(), and a
        # GradScaler reads its found-inf flag before an unfused step); tests/trainable/test_syncs.py.
        fused=True,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=config.optimizer.lr,
        epochs=config.epochs,
        steps_per_epoch=len(train_batches),
        pct_start=config.schedule.pct_start,
        div_factor=config.schedule.div_factor,
        final_div_factor=config.schedule.final_div_factor,
        anneal_strategy=config.schedule.anneal_strategy,
    )
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.uses_grad_scaler)
    es = config.early_stopping
    stopper = _EarlyStopper(es.mode, es.min_delta, es.patience)
    history: list[dict[str, float]] = []
    start = 1
    if resume_from is not None:
        state = checkpoint.load(resume_from, map_location=rt.device)
        if state["config"] != config.to_dict():
            raise UserError(
                f"checkpoint {resume_from} was trained with a different config; resume with the same one"
            )
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        stopper = _EarlyStopper(**state["early_stopping"])
        history, start = list(state["history"]), int(state["epoch"]) + 1
    step_model: nn.Module = torch.compile(net) if config.compile else net  # type: ignore[assignment]
    # torch.compile is lazy: it compiles at the first train step and the first eval call.
    # Both are timed apart (compile_s) so epoch 1's throughput is the model's, not the compiler's.
    compile_s = _compile_eval_graph(step_model, val_batches, rt, fmt) if config.compile else 0.0
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    status, reason = Status.COMPLETED, f"ran all {config.epochs} epochs"
    for epoch in range(start, config.epochs + 1):
        if stopper.should_stop:
            break
        # Per-epoch seeds (dropout, shuffle, augmentation) make a resumed run replay exactly.
        torch.manual_seed(epoch_seed(config.seed, epoch))
        set_epoch(epoch)
        t0 = time.perf_counter()
        compiling = config.compile and epoch == start
        loss, acc, finite, n_images, first_step_s = _train_epoch(
            step_model, train_batches, opt, sched, scaler, criterion, rt, fmt, compiling
        )
        train_s = time.perf_counter() - t0 - first_step_s
        if compiling:  # the first step's images are left out of the throughput with its time
            n_images -= config.batch_size
        if not finite:
            status, reason = (
                Status.DIVERGED,
                f"non-finite training loss in epoch {epoch}; lower optimizer.lr",
            )
            break
        val_loss, val_acc = loss_acc(step_model, val_batches, rt, fmt, config.tta_hflip)
        metrics = {
            EPOCH: float(epoch),
            "train_loss": loss,
            "train_acc": acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": float(sched.get_last_lr()[0]),
            "epoch_s": time.perf_counter() - t0,
            "train_s": train_s,
            "images_per_s": n_images / train_s,
        }
        if compiling:
            metrics["compile_s"] = compile_s + first_step_s
        improved = stopper.update(metrics[es.monitor], epoch)
        # 1.0 when training ends after this epoch by its own rules (schedule done or early
        # stop); a run cut before that (e.g. by a search scheduler) never reports final=1.
        metrics[FINAL] = float(epoch == config.epochs or stopper.should_stop)
        history.append(metrics)
        state = {
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epoch,
            "config": config.to_dict(),
            "classes": list(splits.classes),
            "norm": {"mean": mean, "std": std},
            "metrics": metrics,
            "history": history,
            "early_stopping": vars(stopper).copy(),
        }
        if improved:
            checkpoint.save_atomic(state, out_dir / "best" / checkpoint.FILENAME)
        checkpoint.save_atomic(state, out_dir / "last" / checkpoint.FILENAME)
        report(metrics, out_dir / "last")
        if stopper.should_stop:
            status = Status.EARLY_STOPPED
            reason = f"{es.monitor} did not improve by > {es.min_delta} for {es.patience} epochs"
    result = TrainResult(
        status, reason, len(history), stopper.best_epoch, stopper.best, es.monitor, out_dir, history
    )
    if result.best_checkpoint.exists():
        best = checkpoint.load(result.best_checkpoint, map_location=rt.device)
        net.load_state_dict(best["model"])
        cm = predict_confusion(net, val_batches, rt, fmt, len(splits.classes), config.tta_hflip)
        result.val_metrics = summarize(cm, splits.classes)
        write_metrics(
            result.val_metrics,
            out_dir / "val_metrics",
            f"validation, best epoch {stopper.best_epoch}",
        )
    return result


def _check_warmup(config: TrainConfig, steps_per_epoch: int) -> None:
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


def _train_batches(
    config: TrainConfig, data: ArrayDataset, rt: Runtime, mean: list[float], std: list[float]
) -> tuple[Any, Callable[[int], None]]:
    if config.loader.kind == "device":
        loader = DeviceLoader(
            data,
            config.batch_size,
            rt.device,
            mean,
            std,
            train=True,
            augment=config.augment,
            channels_last=config.channels_last,
            seed=config.seed,
        )
        return loader, loader.set_epoch
    gen = torch.Generator()
    dl = make_dataloader(
        data,
        config.batch_size,
        mean,
        std,
        config.loader,
        train=True,
        augment=config.augment,
        pin_memory=config.loader.pin_memory and rt.device.type == "cuda",
        generator=gen,
    )

    def set_epoch(epoch: int) -> None:
        gen.manual_seed(epoch_seed(config.seed, epoch))  # fixes the shuffle and workers' base seed

    return dl, set_epoch


def _train_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    criterion: nn.Module,
    rt: Runtime,
    fmt: torch.memory_format,
    time_first_step: bool = False,
) -> tuple[float, float, bool, int, float]:
    """Mean loss, accuracy, all-finite flag, images, and (if asked) the first step's seconds:
    the one host sync of the epoch besides the final read, only when compiling."""
    model.train()
    loss_sum = torch.zeros((), device=rt.device)
    correct = torch.zeros((), device=rt.device, dtype=torch.long)
    finite = torch.ones((), device=rt.device, dtype=torch.bool)
    n, first_step_s, t0 = 0, 0.0, time.perf_counter()
    for step, (x, y) in enumerate(batches):
        if step == 1 and time_first_step:
            _sync(rt)
            first_step_s = time.perf_counter() - t0
        x = x.to(rt.device, non_blocking=True, memory_format=fmt)
        y = y.to(rt.device, non_blocking=True)
        with rt.autocast():
            logits = model(x)
            loss = criterion(logits, y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        loss = loss.detach().float()
        finite &= torch.isfinite(loss)
        loss_sum += loss * y.numel()
        correct += (logits.argmax(1) == y).sum()
        n += y.numel()
    loss_total, correct_total, all_finite = torch.stack(
        [loss_sum, correct.float(), finite.float()]
    ).tolist()
    return loss_total / n, correct_total / n, bool(all_finite), n, first_step_s


def _sync(rt: Runtime) -> None:
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)


def _compile_eval_graph(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], rt: Runtime, fmt: Any
) -> float:
    """Seconds to compile the eval-mode graph, on one validation batch. Eval mode with no
    gradients changes no weight and no BatchNorm statistic, so training is unaffected."""
    t0 = time.perf_counter()
    x, _ = next(iter(batches))
    model.eval()
    with torch.no_grad(), rt.autocast():
        model(x.to(rt.device, memory_format=fmt))
    _sync(rt)
    return time.perf_counter() - t0
