"""Training. Knows nothing about Ray: `train(config, out_dir, report=...)`.

Per epoch: train (`loop.train_epoch`: the optimizer and schedule of `optim.py`, stepped per
batch, under autocast), evaluate on the validation split, write `last/checkpoint.pt` (always)
and `best/checkpoint.pt` (on improvement of the monitored metric), then call
`report(metrics, last_checkpoint_dir)`. Loss, accuracy and a finite-loss flag are accumulated
on the device and read once per epoch, so the hot loop never waits for the host.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainable.config import TrainConfig, build_config
from trainable.data.augment import check_augment, epoch_seed
from trainable.data.datasets import Splits, load_splits
from trainable.data.loaders import train_batches, train_steps
from trainable.data.memo import channel_stats_of, images_key
from trainable.errors import ConfigError, UserError
from trainable.files import atomic, checkpoint
from trainable.files.run_dir import RunDir
from trainable.model.network import build_network, init_from_data, set_whiten_bias_trainable
from trainable.training.evaluation import TTA, eval_batches, loss_acc, predict_confusion
from trainable.training.lookahead import Lookahead
from trainable.training.loop import (
    EVALUATION,
    TRAIN,
    Stepper,
    TrainHooks,
    compile_eval_graph,
    train_epoch,
)
from trainable.training.metrics import summarize, write_metrics
from trainable.training.optim import build_optimizer, build_schedule, check_schedule
from trainable.training.runtime import Runtime, backend_flags, resolve
from trainable.training.stopping import EarlyStopper
from trainable.vocab import EPOCH, FINAL, Status

# (metrics, the folder of the checkpoint written this epoch, or None if none was written)
ReportFn = Callable[[dict[str, float], Path | None], None]


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
        return RunDir(self.out_dir).best_checkpoint


def progress_printer(total_epochs: int) -> ReportFn:
    def report(m: dict[str, float], _ckpt: Path | None) -> None:
        print(
            f"epoch {int(m['epoch']):>3}/{total_epochs}  "
            f"train loss {m['train_loss']:.4f} acc {m['train_acc']:.2%}  "
            + (  # no validation split: NaN metrics, not printed
                f"val loss {m['val_loss']:.4f} acc {m['val_acc']:.2%}  "
                if not math.isnan(m["val_loss"])
                else ""
            )
            + f"lr {m['lr']:.2e}  {m['epoch_s']:.1f}s  {m['images_per_s']:.0f} img/s",
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
    hooks: TrainHooks | None = None,
    save_policy: checkpoint.SavePolicy | None = None,
    evaluate_best: bool = True,
) -> TrainResult:
    """Train `config`, writing config, checkpoints and validation metrics under `out_dir`.

    `hooks` (for benchmarks) wraps each epoch's phases and sees its training statistics;
    `save_policy` says when to write checkpoints (default: every epoch); `evaluate_best=False`
    skips the best epoch's per-class validation metrics (a search's trials: nothing reads them,
    and they cost a validation pass and a plot after every finished trial)."""
    out_dir = Path(out_dir)
    if resume_from is None and RunDir(out_dir).last_checkpoint.exists():
        raise UserError(
            f"{out_dir} already holds a training run; resume it or choose another output folder"
        )
    runtime = resolve(config)
    splits = data if data is not None else load_splits(config.dataset)
    check_schedule(config, train_steps(len(splits.train), config.batch_size))
    check_augment(config.augment, min(splits.train.images.shape[1:3]))
    report = report or progress_printer(config.epochs)
    out_dir.mkdir(parents=True, exist_ok=True)
    with backend_flags(config, runtime):
        run = _setup(config, runtime, splits, out_dir, report, hooks or TrainHooks())
        run.save_policy = save_policy or checkpoint.SavePolicy()
        run.evaluate_best = evaluate_best
        start = _resume(run, resume_from) if resume_from is not None else 1
        # Written once a resume has accepted the config: a refused one leaves the run's own.
        atomic.write_text(RunDir(out_dir).config, config.to_yaml())
        return _fit(run, start)


@dataclass
class _Run:
    """One training run's parts, built once by `_setup` and carried between epochs."""

    config: TrainConfig
    rt: Runtime
    fmt: torch.memory_format
    classes: list[str]
    norm: dict[str, list[float]]
    net: nn.Module  # the weights (checkpointed)
    step_model: nn.Module  # what runs them: `net`, or its torch.compile wrapper
    train_batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
    set_epoch: Callable[[int], None]
    val_batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None  # None: no validation split
    stepper: Stepper
    criterion: nn.Module
    stopper: EarlyStopper
    out_dir: Path
    report: ReportFn
    hooks: TrainHooks
    lookahead: Lookahead | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    compile_s: float = 0.0
    save_policy: checkpoint.SavePolicy = field(default_factory=checkpoint.SavePolicy)
    saved_at: float = field(default_factory=time.perf_counter)  # the last checkpoint write
    pending_best: dict[str, Any] | None = None  # an improvement not written yet
    evaluate_best: bool = True  # per-class validation metrics of the best epoch at the end
    input_shape: tuple[int, int, int] = (3, 32, 32)  # one image as the network takes it
    cost: dict[str, float] | None = None  # measure_cost's figures, once measured


def _setup(
    config: TrainConfig,
    rt: Runtime,
    splits: Splits,
    out_dir: Path,
    report: ReportFn,
    hooks: TrainHooks,
) -> _Run:
    torch.manual_seed(config.seed)
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    net = build_network(config.model, len(splits.classes), config.dataset.input_size)
    net = net.to(rt.device, memory_format=fmt)  # type: ignore[call-overload]
    # The same for every run on these images: computed once per process (trainable.data.memo)
    key = images_key(splits.train.images)
    mean, std = channel_stats_of(splits.train.images, key)
    init_from_data(net, config.model, splits.train.images, mean, std, key)
    batches, set_epoch = train_batches(config, splits.train, rt.device, mean, std)
    opt = build_optimizer(net, config)
    stepper = Stepper(
        opt,
        build_schedule(opt, config, len(batches)),
        torch.amp.GradScaler(rt.device.type, enabled=rt.uses_grad_scaler),
    )
    lookahead = None
    if config.lookahead.enabled:
        lookahead = Lookahead(net, config.lookahead, config.epochs * len(batches))
        stepper.after_step.append(lookahead.after_step)
    es = config.early_stopping
    step_model: nn.Module = torch.compile(net) if config.compile else net  # type: ignore[assignment]
    return _Run(
        config=config,
        rt=rt,
        fmt=fmt,
        classes=list(splits.classes),
        norm={"mean": mean, "std": std},
        net=net,
        step_model=step_model,
        train_batches=batches,
        set_epoch=set_epoch,
        val_batches=eval_batches(config, splits.val, rt, mean, std) if len(splits.val) else None,
        stepper=stepper,
        criterion=nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        stopper=EarlyStopper(es.mode, es.min_delta, es.patience),
        out_dir=out_dir,
        report=report,
        hooks=hooks,
        lookahead=lookahead,
        input_shape=(3, int(splits.train.images.shape[1]), int(splits.train.images.shape[2])),
    )


def _resume(run: _Run, resume_from: str | Path) -> int:
    """Load a checkpoint's full state into `run`; returns the first epoch still to train."""
    state = checkpoint.load(resume_from, map_location=run.rt.device)
    if _saved_config(state) != run.config.to_dict():
        raise UserError(
            f"checkpoint {resume_from} was trained with a different config; resume with the same one"
        )
    run.net.load_state_dict(state["model"])
    run.stepper.opt.load_state_dict(state["optimizer"])
    run.stepper.sched.load_state_dict(state["scheduler"])
    run.stepper.scaler.load_state_dict(state["scaler"])
    run.stopper = EarlyStopper(**state["early_stopping"])
    if run.lookahead is not None:
        run.lookahead.load_state_dict(state["lookahead"])
    run.history = list(state["history"])
    return int(state["epoch"]) + 1


def _saved_config(state: dict[str, Any]) -> dict[str, Any] | None:
    """A checkpoint's config with today's defaults filled in: a run saved before a key
    existed (e.g. `optimizer.name`) trained with its default, so it resumes."""
    try:
        return build_config(state["config"]).to_dict()
    except ConfigError:
        return None


def _fit(run: _Run, start: int) -> TrainResult:
    config, es = run.config, run.config.early_stopping
    # torch.compile is lazy: it compiles at the first train step and the first eval call.
    # Both are timed apart (compile_s) so epoch 1's throughput is the model's, not the compiler's.
    if config.compile and run.val_batches is not None:
        run.compile_s = compile_eval_graph(run.step_model, run.val_batches, run.rt, run.fmt)
    status, reason = Status.COMPLETED, f"ran all {config.epochs} epochs"
    for epoch in range(start, config.epochs + 1):
        if run.stopper.should_stop:
            break
        metrics = _run_epoch(run, epoch, compiling=config.compile and epoch == start)
        if metrics is None:
            status = Status.DIVERGED
            lr_key = (
                "optimizer.lr" if config.optimizer.name == "adamw" else "optimizer.sgd.lr_per_1024"
            )
            reason = f"non-finite training loss in epoch {epoch}; lower {lr_key}"
            break
        # Without a validation split the metric is NaN and every epoch counts as the best so
        # far (a NaN best is always improved on): best/ holds the final epoch.
        if config.measure_cost:
            metrics |= _cost(run)
        improved = run.stopper.update(metrics[es.monitor], epoch)
        # 1.0 when training ends after this epoch by its own rules (schedule done or early
        # stop); a run cut before that (e.g. by a search scheduler) never reports final=1.
        metrics[FINAL] = float(epoch == config.epochs or run.stopper.should_stop)
        run.history.append(metrics)
        run.report(metrics, _save(run, epoch, metrics, improved))
        if run.stopper.should_stop:
            status = Status.EARLY_STOPPED
            reason = f"{es.monitor} did not improve by > {es.min_delta} for {es.patience} epochs"
    if run.pending_best is not None:  # a diverged run's best epoch, not written yet
        checkpoint.save_atomic(run.pending_best, RunDir(run.out_dir).best_checkpoint)
    s = run.stopper
    result = TrainResult(
        status, reason, len(run.history), s.best_epoch, s.best, es.monitor, run.out_dir, run.history
    )
    _final_evaluation(run, result)
    return result


def _cost(run: _Run) -> dict[str, float]:
    """The trained network's deployment cost, measured once, after the first epoch run."""
    if run.cost is None:
        from trainable.model.cost import measure_cost

        cost = measure_cost(run.net, run.input_shape, run.rt.device, run.rt.autocast(), run.fmt)
        run.cost = cost.metrics()
    return run.cost


def _run_epoch(run: _Run, epoch: int, compiling: bool) -> dict[str, float] | None:
    """Train and evaluate one epoch: its metrics, or None if the training loss was not finite."""
    config, rt = run.config, run.rt
    # Per-epoch seeds (dropout, shuffle, augmentation) make a resumed run replay exactly.
    torch.manual_seed(epoch_seed(config.seed, epoch))
    run.set_epoch(epoch)
    set_whiten_bias_trainable(run.net, config.model, epoch)
    t0 = time.perf_counter()
    with run.hooks.around(TRAIN, epoch):
        stats = train_epoch(
            run.step_model, run.train_batches, run.stepper, run.criterion, rt, run.fmt, compiling
        )
    run.hooks.epoch_stats(epoch, stats)
    train_s = time.perf_counter() - t0 - stats.first_step_s
    # With compiling, the first step's images are left out of the throughput with its time.
    n_images = stats.images - (config.batch_size if compiling else 0)
    if not stats.finite:
        return None
    val_loss = val_acc = val_balanced_acc = math.nan
    if run.val_batches is not None:
        with run.hooks.around(EVALUATION, epoch):
            val_loss, val_acc, val_balanced_acc = loss_acc(
                run.step_model, run.val_batches, rt, run.fmt, TTA.of(config)
            )
    metrics = {
        EPOCH: float(epoch),
        "train_loss": stats.loss,
        "train_acc": stats.acc,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "val_balanced_acc": val_balanced_acc,
        "lr": float(run.stepper.sched.get_last_lr()[0]),
        "epoch_s": time.perf_counter() - t0,
        "train_s": train_s,
        "images_per_s": n_images / train_s,
    }
    if compiling:
        metrics["compile_s"] = run.compile_s + stats.first_step_s
    return metrics


def _save(run: _Run, epoch: int, metrics: dict[str, float], improved: bool) -> Path | None:
    """Write `last/` (and `best/` if it improved since) when the policy says so; its folder, or
    None. An improvement in between is kept as a copy and written with the next `last/`, so the
    pair on disk always belongs to one moment of the run. Adds `checkpoint_s` to the metrics."""
    t0 = time.perf_counter()
    due = run.save_policy.due(epoch, bool(metrics[FINAL]), t0 - run.saved_at)
    if not (due or (improved and run.val_batches is not None)):
        metrics["checkpoint_s"] = time.perf_counter() - t0
        return None
    state = _state(run, epoch, metrics)
    # Without a validation split every epoch is the best: best/ is written with last/ from the
    # same state, and nothing is copied between writes (a refit of thousands of short epochs
    # copied the whole state every epoch).
    if improved and run.val_batches is not None:
        run.pending_best = state if due else copy.deepcopy(state)
    if due:
        best = state if run.val_batches is None else run.pending_best
        if best is not None:
            checkpoint.save_atomic(best, RunDir(run.out_dir).best_checkpoint)
            run.pending_best = None
        checkpoint.save_atomic(state, RunDir(run.out_dir).last_checkpoint)
        run.saved_at = time.perf_counter()
    # Reported, not saved (the file is written already): what checkpoints cost per epoch.
    metrics["checkpoint_s"] = time.perf_counter() - t0
    return RunDir(run.out_dir).last_checkpoint.parent if due else None


def _state(run: _Run, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
    """The checkpoint: all a resumed run needs, plus the classes and normalisation evaluation needs."""
    state = {
        "model": run.net.state_dict(),
        "optimizer": run.stepper.opt.state_dict(),
        "scheduler": run.stepper.sched.state_dict(),
        "scaler": run.stepper.scaler.state_dict(),
        "epoch": epoch,
        "config": run.config.to_dict(),
        "classes": run.classes,
        "norm": run.norm,
        "metrics": metrics,
        "history": run.history,
        "early_stopping": vars(run.stopper).copy(),
    }
    if run.lookahead is not None:  # an optional key: format 1 checkpoints stay readable
        state["lookahead"] = run.lookahead.state_dict()
    return state


def _final_evaluation(run: _Run, result: TrainResult) -> None:
    """The best epoch's weights, evaluated on the validation split into per-class metrics."""
    if not run.evaluate_best or not result.best_checkpoint.exists() or run.val_batches is None:
        return
    best = checkpoint.load(result.best_checkpoint, map_location=run.rt.device)
    run.net.load_state_dict(best["model"])
    cm = predict_confusion(
        run.net, run.val_batches, run.rt, run.fmt, len(run.classes), TTA.of(run.config)
    )
    result.val_metrics = summarize(cm, run.classes)
    write_metrics(
        result.val_metrics,
        RunDir(run.out_dir).val_metrics,
        f"validation, best epoch {result.best_epoch}",
    )
