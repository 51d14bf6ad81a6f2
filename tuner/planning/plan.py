"""Sizing a whole run to a time budget: what to train, how much to search, how long to retrain.

The budget is the run's, end to end. What is left after the fixed costs (measuring here,
decoding, starting Ray, the test evaluation and export, a 5% reserve) is split between the
search and the final training:

- The final training gets most of it (`RETRAIN_SHARE`): on CIFAR-10 training the default
  longer beat searching it for the same time (BENCHMARKS.md, "Search against no search"), so
  the search only gets what training cannot use: past `MAX_RETRAIN_STEPS` optimizer steps
  (at least `MAX_RETRAIN_EPOCHS` epochs) the rest goes
  to the search, and a budget too short for `MIN_RETRAIN_EPOCHS` gives the search only
  `SMALL_SEARCH_SHARE`.
- The search runs one trial per core (or four per GPU) on a stratified subset sized
  (`tuner.planning.search_size`) so that about `TARGET_TRIALS` trials fit, each `max_t`
  epochs at most (ASHA stops the weak ones);
  where every image fits with time to spare, the trials get longer instead (up to the final
  training's epochs), so the search ranks configs at a horizon like the final training's;
  the base config is its first trial (`searcher.base_first`), so the winner is never a config
  the search measured as worse than the default.

Every duration comes from the caller's measurements (`Speed`, the folder's decode time); the
constants are the fixed costs measured in BENCHMARKS.md on this project's machines.
"""

from __future__ import annotations

import math
import re
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainable.data.inspect import FolderSummary
from tuner.planning.machine import Machine
from tuner.planning.recipe import (
    SEARCH_SPACE,
    Architecture,
    architecture,
    base_config,
    recipe_epochs,
)
from tuner.planning.search_size import (
    EVAL_SPEEDUP,
    TRIAL_OVERHEAD_S,
    batch_for,
    resolution_note,
    search_size,
)

RESERVE = 0.05  # of the budget, held back for what the estimates miss
# Once the final training's epoch is timed (tuner.stages.probe), what is left to miss is that
# measurement's error and the export: 5% held back there, with the epochs floored, left 9-10%
# of 10-minute runs unused (bench/results/own_data_gray28_10m_s14.json: 538 s of 600).
FINAL_RESERVE = 0.025
RAY_START_S = 15.0  # ray.init, the dashboard, Tune's experiment set-up and end
EXPORT_S = 15.0  # the exported checkpoint, tables, the ONNX export and its latency
PROBE_S = 8.0  # timing the final training (tuner.stages.probe): a task's start, 2 short epochs
RETRAIN_SHARE = 0.65
SMALL_SEARCH_SHARE = 0.15
MIN_RETRAIN_EPOCHS = 4
MAX_RETRAIN_EPOCHS = 40  # in the plan: past this and MAX_RETRAIN_STEPS, the rest goes to search
# Counted in steps, not epochs, because a small folder needs many more epochs for the same
# training: the default on a 2,800-image folder still gained from 40 to 120 to 400 epochs
# (83.9%, 85.3%, 86.8% balanced test accuracy; 875 to 8,750 steps; BENCHMARKS.md, "Own data").
MAX_RETRAIN_STEPS = 10_000
# When the search is done the final training takes what is left, up to the config's limit:
# a 1,000-epoch cap left 18% of a 4-minute budget unused on a 500-image folder while the
# default alone trained 2,400+ epochs (bench/results/own_data_s13.json, few50).
RUNTIME_MAX_EPOCHS = 10_000
IMBALANCED = 1.5  # largest class over smallest at which plain accuracy misleads the search
PATIENCE_MIN = 4  # trials in a row without a gain above noise; at least a third of the plan's
TTA_VIEWS = 6  # tta_hflip + tta_translate


@dataclass(frozen=True)
class Speed:
    """Training images per second of the planned model, measured on this machine."""

    trial_images_per_s: float  # one trial, with its share of the machine
    retrain_images_per_s: float  # one training with the whole machine
    measured_s: float = 0.0  # what measuring took


@dataclass(frozen=True)
class Plan:
    name: str
    root: Path
    budget_s: float
    arch: Architecture
    batch_size: int
    trial_subset: int
    val_subset: int
    max_t: int
    num_samples: int
    search_s: float
    retrain_epochs: int
    retrain_s: float
    retrain_epoch_s: float  # one epoch of the final training, measured speed
    after_retrain_s: float  # the test evaluation and export
    reserve_s: float  # held back from the final training for what its estimate misses
    retrain_images: int  # the final training's images an epoch
    speedup: float  # the whole machine's training speed over one trial's, measured
    fixed_s: float
    notes: tuple[str, ...] = field(default=())
    metric: str = "val_acc"  # val_balanced_acc for classes of very different sizes

    def spec(self) -> dict[str, Any]:
        """The search-space file's content (`tuner.spec.SearchSpec`)."""
        a = self.arch
        return {
            "name": self.name,
            "base": base_config(a, self.root, self.trial_subset, self.val_subset, self.batch_size),
            "space": deepcopy(SEARCH_SPACE),
            "searcher": {
                "kind": "tpe",
                "seed": 0,
                "n_startup_trials": max(2, min(8, self.num_samples // 3)),
                "multivariate": True,
                # A search whose trials stop beating the best (the base config, first) by
                # more than the validation noise ends, and the final training gets its time.
                "patience": max(PATIENCE_MIN, self.num_samples // 3),
            },
            "scheduler": {
                "metric": self.metric,
                "mode": "max",
                "max_t": self.max_t,
                "grace_period": 1,
                "reduction_factor": 3,
            },
            "num_samples": self.num_samples,
            "max_concurrent_trials": a.concurrency,
            "time_budget_s": round(self.search_s, 1),
            "resources": {"cpus": a.cpus_per_trial, "gpu": a.gpu_per_trial},
            "retrain": {
                "seeds": 1,
                "epochs": self.retrain_epochs,
                "refit": True,
                "cpus": a.cpus_per_trial * a.concurrency,
                "gpu": 1 if a.gpu_per_trial else 0,
                "dataset": {"train_subset": None, "val_subset": None},
            },
            "budget": {
                "total_s": round(self.budget_s, 1),
                "retrain_epoch_s": round(self.retrain_epoch_s, 3),
                "after_retrain_s": round(self.after_retrain_s, 1),
                "reserve_s": round(self.reserve_s, 1),
                # At run time the final training takes whatever the search left, however
                # many epochs that is: a search that ends early (all its trials done) must not
                # leave budget unused (bench/results/own_data_variants.json: 40 capped
                # epochs lost 0.6-1.6 points to the uncapped default).
                "max_epochs": RUNTIME_MAX_EPOCHS,
                "retrain_images": self.retrain_images,
                "speedup": round(self.speedup, 4),
            },
            "max_failures": 1,
            "storage_path": "results",
        }


def name_for(root: Path) -> str:
    """A results-folder name from the data folder's name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", root.resolve().name).strip("-._") or "data"
    return name[:90]


@dataclass(frozen=True)
class FixedCosts:
    total_s: float  # everything below, the time already spent and the reserve
    decode_s: float
    test_s: float


def fixed_costs(
    data: FolderSummary,
    machine: Machine,
    budget_s: float,
    retrain_images_per_s: float,
    elapsed_s: float,
) -> FixedCosts:
    """What the run spends besides searching and the final training's epochs."""
    decode_s = (data.num_train + data.num_test) * data.decode_s_per_image / machine.cpus
    # The test split: once with TTA after retraining, then twice (PyTorch, ONNX Runtime) to
    # check the exported model.
    test_s = data.num_test * (TTA_VIEWS + 2) / (retrain_images_per_s * EVAL_SPEEDUP)
    total = elapsed_s + decode_s + RAY_START_S + PROBE_S + test_s + EXPORT_S + RESERVE * budget_s
    return FixedCosts(total, decode_s, test_s)


def make_plan(
    data: FolderSummary,
    machine: Machine,
    budget_s: float,
    speed: Speed,
    elapsed_s: float = 0.0,
    name: str | None = None,
    width: int | None = None,
) -> Plan:
    """The run sized to `budget_s`, `elapsed_s` of which are already spent (inspecting and
    measuring), for a model of `width` (`tuner.planning.width` chooses it; `speed` is
    measured at it). Raises ValueError with the smallest workable budget when it is too
    short."""
    arch = architecture(data, machine, width)
    n_all = data.num_train
    fixed = fixed_costs(data, machine, budget_s, speed.retrain_images_per_s, elapsed_s)
    fixed_s, decode_s, test_s = fixed.total_s, fixed.decode_s, fixed.test_s
    avail = budget_s - fixed_s
    epoch_s = n_all / speed.retrain_images_per_s
    if avail < 2 * epoch_s + TRIAL_OVERHEAD_S:
        need = fixed_s - RESERVE * budget_s + 2 * epoch_s + TRIAL_OVERHEAD_S
        raise ValueError(
            f"a budget of {budget_s:.0f} s is too short for this folder here: at least "
            f"{math.ceil(need / (1 - RESERVE))} s (one epoch of all {n_all:,} images takes "
            f"{epoch_s:.1f} s)"
        )
    notes = [
        f"fixed costs {fixed_s:.0f} s: measuring {elapsed_s:.0f} s, decoding {decode_s:.0f} s, "
        f"Ray {RAY_START_S:.0f} s, timing the final training {PROBE_S:.0f} s, test evaluation "
        f"{test_s:.0f} s, export {EXPORT_S:.0f} s, reserve {RESERVE:.0%} ({FINAL_RESERVE:.1%} "
        "once the final training is timed)"
    ]
    epochs = int(RETRAIN_SHARE * avail / epoch_s)
    recipe = recipe_epochs(n_all)
    if epochs < recipe <= (1 - SMALL_SEARCH_SHARE) * avail / epoch_s:
        epochs = recipe
        notes.append(
            f"final training: the recipe's length, {recipe} epochs ({recipe * n_all:,} "
            "images seen), before the search gets any more"
        )
    cap = max(MAX_RETRAIN_EPOCHS, MAX_RETRAIN_STEPS * batch_for(int(n_all * 0.9)) // n_all)
    if epochs > cap:
        epochs = cap
        notes.append(f"final training capped at {epochs} epochs; the rest goes to the search")
    elif epochs < MIN_RETRAIN_EPOCHS:
        epochs = max(1, int((1 - SMALL_SEARCH_SHARE) * avail / epoch_s))
        notes.append(f"a short budget: the search gets {SMALL_SEARCH_SHARE:.0%}, training the rest")
    retrain_s = epochs * epoch_s
    search_s = avail - retrain_s
    size = search_size(data, arch.concurrency, speed.trial_images_per_s, search_s, epochs)
    subset, val, trials, max_t = size.trial_subset, size.val_subset, size.trials, size.max_t
    notes.append(
        f"search: {trials} trials of at most {max_t} epochs on {subset:,} images "
        f"({arch.concurrency} at a time), {search_s:.0f} s; final training: {epochs} epochs "
        f"of all {n_all:,} training images, {retrain_s:.0f} s"
    )
    metric = "val_acc"
    if data.imbalance >= IMBALANCED:
        metric = "val_balanced_acc"
        notes.append(
            f"classes of very different sizes ({data.imbalance:.1f}:1): the search maximises "
            "balanced accuracy (the mean per-class accuracy), not plain accuracy"
        )
    notes.append(resolution_note(data, val, metric))
    return Plan(
        metric=metric,
        name=name or name_for(data.root),
        root=data.root,
        budget_s=budget_s,
        arch=arch,
        batch_size=size.batch_size,
        trial_subset=subset,
        val_subset=val,
        max_t=max_t,
        num_samples=trials,
        search_s=search_s,
        retrain_epochs=epochs,
        retrain_s=retrain_s,
        retrain_epoch_s=epoch_s,
        after_retrain_s=test_s + EXPORT_S,
        reserve_s=FINAL_RESERVE * budget_s,
        retrain_images=n_all,
        speedup=speed.retrain_images_per_s / speed.trial_images_per_s,
        fixed_s=fixed_s,
        notes=tuple(notes),
    )
