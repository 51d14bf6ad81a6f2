"""A training run's parts, carried between its epochs (`Run`), and its checkpoint: what is
written when (`save`), what it holds (`state_of`), what a resume restores (`resume`).
Imported by `engine` only; imports the config, the checkpoint files and the run's parts."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainable.config import TrainConfig, build_config
from trainable.errors import ConfigError, UserError
from trainable.files import checkpoint
from trainable.files.run_dir import RunDir
from trainable.training.horizon import Horizon, Pacer
from trainable.training.lookahead import Lookahead
from trainable.training.loop import Stepper, TrainHooks
from trainable.training.runtime import Runtime
from trainable.training.stopping import EarlyStopper
from trainable.vocab import FINAL

# (metrics, the folder of the checkpoint written this epoch, or None if none was written)
ReportFn = Callable[[dict[str, float], Path | None], None]


@dataclass
class Run:
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
    horizon: Horizon = field(default_factory=lambda: Horizon(1))
    steps_per_epoch: int = 1
    planned_epochs: int = 1  # the caller's config.epochs, before any re-plan
    pacer: Pacer | None = None  # with a deadline: times the epochs, re-plans their number


def resume(run: Run, resume_from: str | Path) -> int:
    """Load a checkpoint's full state into `run`; returns the first epoch still to train."""
    state = checkpoint.load(resume_from, map_location=run.rt.device)
    saved = saved_config(state)
    # A run re-planned by a deadline saved its new epochs; it resumes with the config it
    # started with and ends at its last plan (the deadline's clock does not survive a kill).
    if saved is not None and state.get("planned_epochs") == run.config.epochs:
        run.config = run.config.model_copy(update={"epochs": saved["epochs"]})
    if saved != run.config.to_dict():
        raise UserError(
            f"checkpoint {resume_from} was trained with a different config; resume with the same one"
        )
    if "horizon" in state:  # an optional key: checkpoints from before it never re-planned
        run.horizon.load_state_dict(state["horizon"])
    run.net.load_state_dict(state["model"])
    run.stepper.opt.load_state_dict(state["optimizer"])
    run.stepper.sched.load_state_dict(state["scheduler"])
    run.stepper.scaler.load_state_dict(state["scaler"])
    run.stopper = EarlyStopper(**state["early_stopping"])
    if run.lookahead is not None:
        run.lookahead.load_state_dict(state["lookahead"])
    run.history = list(state["history"])
    return int(state["epoch"]) + 1


def saved_config(state: dict[str, Any]) -> dict[str, Any] | None:
    """A checkpoint's config with today's defaults filled in: a run saved before a key
    existed (e.g. `optimizer.name`) trained with its default, so it resumes."""
    try:
        return build_config(state["config"]).to_dict()
    except ConfigError:
        return None


def save(run: Run, epoch: int, metrics: dict[str, float], improved: bool) -> Path | None:
    """Write `last/` (and `best/` if it improved since) when the policy says so; its folder, or
    None. An improvement in between is kept as a copy and written with the next `last/`, so the
    pair on disk always belongs to one moment of the run. Adds `checkpoint_s` to the metrics."""
    t0 = time.perf_counter()
    due = run.save_policy.due(epoch, bool(metrics[FINAL]), t0 - run.saved_at)
    if not (due or (improved and run.val_batches is not None)):
        metrics["checkpoint_s"] = time.perf_counter() - t0
        return None
    state = state_of(run, epoch, metrics)
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


def state_of(run: Run, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
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
        # Optional keys (format 1 reads without them): the schedule's re-plans by a deadline.
        "horizon": run.horizon.state_dict(),
        "planned_epochs": run.planned_epochs,
    }
    if run.lookahead is not None:  # an optional key: format 1 checkpoints stay readable
        state["lookahead"] = run.lookahead.state_dict()
    return state
