"""Training. Knows nothing about Ray: `train(config, out_dir, report=...)`.

Per epoch: train (`loop.train_epoch`: the optimizer and schedule of `optim.py`, stepped per
batch, under autocast), evaluate on the validation split, write `last/checkpoint.pt` (always)
and `best/checkpoint.pt` (on improvement of the monitored metric), then call
`report(metrics, last_checkpoint_dir)`. Loss, accuracy and a finite-loss flag are accumulated
on the device and read once per epoch, so the hot loop never waits for the host. The run's
parts and its checkpoint live in `state.py`; a deadline's re-plans of its epochs in
`horizon.py`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainable.config import TrainConfig
from trainable.data.augment import check_augment, epoch_seed
from trainable.data.datasets import Splits, load_splits
from trainable.data.loaders import train_batches, train_steps
from trainable.data.memo import channel_stats_of, images_key
from trainable.errors import UserError
from trainable.files import atomic, checkpoint
from trainable.files.run_dir import RunDir
from trainable.model.network import build_network, init_from_data, set_whiten_bias_trainable
from trainable.training.evaluation import TTA, eval_batches, loss_acc, predict_confusion
from trainable.training.horizon import Deadline, Horizon, Pacer
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
from trainable.training.optim import (
    build_optimizer,
    build_schedule,
    check_schedule,
    replannable,
)
from trainable.training.runtime import Runtime, backend_flags, resolve
from trainable.training.state import ReportFn, Run, resume, save
from trainable.training.stopping import EarlyStopper
from trainable.vocab import EPOCH, EPOCHS_TOTAL, FINAL, Status


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
    # The run's last plan: config.epochs, unless a deadline re-planned it (engine.train).
    epochs_planned: int = 0

    @property
    def best_checkpoint(self) -> Path:
        return RunDir(self.out_dir).best_checkpoint


def progress_printer(total_epochs: int) -> ReportFn:
    def report(m: dict[str, float], _ckpt: Path | None) -> None:
        total = int(m.get(EPOCHS_TOTAL, total_epochs))  # a deadline may have re-planned it
        print(
            f"epoch {int(m['epoch']):>3}/{total}  "
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
    deadline: Deadline | None = None,
) -> TrainResult:
    """Train `config`, writing config, checkpoints and validation metrics under `out_dir`.

    `hooks` (for benchmarks) wraps each epoch's phases and sees its training statistics;
    `save_policy` says when to write checkpoints (default: every epoch); `evaluate_best=False`
    skips the best epoch's per-class validation metrics (a search's trials: nothing reads them,
    and they cost a validation pass and a plot after every finished trial). With a `deadline`
    the run re-plans its epochs after each one to end by it (`horizon.py`): its checkpoints,
    and its config.yaml once it ends, carry the epochs of the last plan."""
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
        start = resume(run, resume_from) if resume_from is not None else 1
        # Written once a resume has accepted the config: a refused one leaves the run's own.
        atomic.write_text(RunDir(out_dir).config, run.config.to_yaml())
        run.pacer = _pacer(deadline, run.config, start)
        return _fit(run, start)


def _setup(
    config: TrainConfig,
    rt: Runtime,
    splits: Splits,
    out_dir: Path,
    report: ReportFn,
    hooks: TrainHooks,
) -> Run:
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
    horizon = Horizon(config.epochs * len(batches))
    stepper = Stepper(
        opt,
        build_schedule(opt, config, len(batches), horizon),
        torch.amp.GradScaler(rt.device.type, enabled=rt.uses_grad_scaler),
    )
    lookahead = None
    if config.lookahead.enabled:
        lookahead = Lookahead(net, config.lookahead, horizon)
        stepper.after_step.append(lookahead.after_step)
    es = config.early_stopping
    step_model: nn.Module = torch.compile(net) if config.compile else net  # type: ignore[assignment]
    return Run(
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
        horizon=horizon,
        steps_per_epoch=len(batches),
        planned_epochs=config.epochs,
    )


def _fit(run: Run, start: int) -> TrainResult:
    config, es = run.config, run.config.early_stopping
    # torch.compile is lazy: it compiles at the first train step and the first eval call.
    # Both are timed apart (compile_s) so epoch 1's throughput is the model's, not the compiler's.
    if config.compile and run.val_batches is not None:
        run.compile_s = compile_eval_graph(run.step_model, run.val_batches, run.rt, run.fmt)
    status, reason = Status.COMPLETED, ""
    epoch = start
    while epoch <= run.config.epochs:
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
        if run.pacer is not None:
            _replan(run, epoch, run.pacer.total_after(epoch, run.config.epochs))
            metrics[EPOCHS_TOTAL] = float(run.config.epochs)
        improved = run.stopper.update(metrics[es.monitor], epoch)
        # 1.0 when training ends after this epoch by its own rules (schedule done or early
        # stop); a run cut before that (e.g. by a search scheduler) never reports final=1.
        metrics[FINAL] = float(epoch == run.config.epochs or run.stopper.should_stop)
        run.history.append(metrics)
        run.report(metrics, save(run, epoch, metrics, improved))
        if run.stopper.should_stop:
            status = Status.EARLY_STOPPED
            reason = f"{es.monitor} did not improve by > {es.min_delta} for {es.patience} epochs"
        epoch += 1
    reason = reason or f"ran all {run.config.epochs} epochs" + (
        f" (planned {run.planned_epochs}, re-planned to the deadline)"
        if run.config.epochs != run.planned_epochs
        else ""
    )
    if run.pending_best is not None:  # a diverged run's best epoch, not written yet
        checkpoint.save_atomic(run.pending_best, RunDir(run.out_dir).best_checkpoint)
    s = run.stopper
    result = TrainResult(
        status, reason, len(run.history), s.best_epoch, s.best, es.monitor, run.out_dir, run.history
    )
    result.epochs_planned = run.config.epochs
    if run.config.epochs != run.planned_epochs:  # what was trained, for a rerun to reproduce
        atomic.write_text(RunDir(run.out_dir).config, run.config.to_yaml())
    _final_evaluation(run, result)
    return result


def _pacer(deadline: Deadline | None, config: TrainConfig, start: int) -> Pacer | None:
    """A deadline's pacer where this config's schedule can follow it; else None, said once.
    The first epoch in this process and a whitening stem's bias epochs are slower: not timed."""
    if deadline is None:
        return None
    if not replannable(config):
        print(
            f"schedule {config.schedule.name} cannot be re-planned mid-run: training keeps its "
            f"{config.epochs} planned epochs (schedule.name=triangular follows the deadline)",
            flush=True,
        )
        return None
    slow = config.model.whiten.bias_epochs if config.model.stem == "whiten" else 0
    return Pacer(deadline, first_timed=max(start, slow) + 1)


def _replan(run: Run, epoch: int, total: int) -> None:
    """From `epoch` on the run ends after `total` epochs: its schedule and lookahead follow
    (`Horizon`), and its config (checkpointed) says so."""
    if total != run.config.epochs:
        run.horizon.replan(epoch * run.steps_per_epoch, total * run.steps_per_epoch)
        run.config = run.config.model_copy(update={"epochs": total})


def _cost(run: Run) -> dict[str, float]:
    """The trained network's deployment cost, measured once, after the first epoch run."""
    if run.cost is None:
        from trainable.model.cost import measure_cost

        cost = measure_cost(run.net, run.input_shape, run.rt.device, run.rt.autocast(), run.fmt)
        run.cost = cost.metrics()
    return run.cost


def _run_epoch(run: Run, epoch: int, compiling: bool) -> dict[str, float] | None:
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


def _final_evaluation(run: Run, result: TrainResult) -> None:
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
