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
- The search runs one trial per core (or four per GPU) on a stratified subset sized so that
  about `TARGET_TRIALS` trials fit, each `max_t` epochs at most (ASHA stops the weak ones);
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainable.data.inspect import FolderSummary
from tuner.planning.machine import Machine
from tuner.results.comparison import effective_images, noise_margin

RESERVE = 0.05  # of the budget, held back for what the estimates miss
# Once the final training's epoch is timed (tuner.stages.probe), what is left to miss is that
# measurement's error and the export: 5% held back there, with the epochs floored, left 9-10%
# of 10-minute runs unused (bench/results/own_data_gray28_10m_s14.json: 538 s of 600).
FINAL_RESERVE = 0.025
RAY_START_S = 15.0  # ray.init, the dashboard, Tune's experiment set-up and end
TRIAL_OVERHEAD_S = 2.0  # a trial's start and its first report (issue #27: 1.1-1.5 s)
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
TARGET_TRIALS = 12
SHORT_HORIZON = 6  # epochs a trial gets when the search must use a subset
PATIENCE_MIN = 4  # trials in a row without a gain above noise; at least a third of the plan's
MAX_TRIALS = 64
MIN_SUBSET_PER_CLASS = 20
CPU_IMAGE_SIZE_CAP = 32  # px: a CPU budget buys more epochs at a small size
GPU_IMAGE_SIZE_CAP = 128
EVAL_SPEEDUP = 3.0  # evaluating an image costs about a third of training on it
TTA_VIEWS = 6  # tta_hflip + tta_translate
CALIBRATION_BATCH = 256
# The model's width. On a CPU, the widest of CPU_WIDTHS whose final training still gets the
# recipe's length (tuner.planning.width): on CIFAR-10, width 16 trained for 68 epochs in a
# 10-minute run reached 87.44% (BENCHMARKS.md, "Own data"), while airbench94's width 64 for
# its 10 epochs reached 90.85% in 449 s; capacity is worth more than epochs past the recipe's.
CPU_WIDTHS = (16, 32, 48, 64)
GPU_WIDTH = 64
# The recipe's length: airbench94's hyperparameters were tuned for 10 epochs of CIFAR-10's
# 50,000 images; a smaller folder needs more epochs for as many optimizer updates (the
# default on a 2,800-image folder gained from 40 to 400 epochs, see MAX_RETRAIN_STEPS).
RECIPE_EPOCHS = 10
RECIPE_IMAGES_SEEN = 500_000


@dataclass(frozen=True)
class Speed:
    """Training images per second of the planned model, measured on this machine."""

    trial_images_per_s: float  # one trial, with its share of the machine
    retrain_images_per_s: float  # one training with the whole machine
    measured_s: float = 0.0  # what measuring took


@dataclass(frozen=True)
class Architecture:
    """What is trained, chosen from the data and the machine before anything is measured."""

    image_size: int
    width: int
    device: str
    concurrency: int  # trials at a time
    cpus_per_trial: int
    gpu_per_trial: float


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
            "space": {
                "optimizer.sgd.lr_per_1024": {"type": "loguniform", "low": 4.0, "high": 30.0},
                "optimizer.sgd.weight_decay_per_1024": {
                    "type": "loguniform",
                    "low": 0.005,
                    "high": 0.05,
                },
                "label_smoothing": {"type": "uniform", "low": 0.0, "high": 0.3},
                "augment.hflip": {"type": "choice", "values": [True, False]},
            },
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


def base_config(
    a: Architecture, root: Path, subset: int, val: int, batch_size: int
) -> dict[str, Any]:
    """quick.yaml's recipe (airbench94's elements) at the planned size, width and batch."""
    return {
        "dataset": {
            "name": "imagefolder",
            "root": str(root),
            "image_size": a.image_size,
            "train_subset": subset,
            "val_subset": val,
            "download": False,
        },
        "model": {
            "name": "fastnet",
            "width": a.width,
            "depth": 2,
            "stem": "whiten",
            "whiten": {"eps": 0.0005, "images": min(5000, subset), "bias_epochs": 3},
            "conv_init": "dirac",
            "bn_momentum": 0.4,
            # PyTorch's default, not airbench94's 1e-12: a channel with (almost) no variance
            # on someone's data (flat images, grayscale copies) is otherwise scaled by up to
            # 1e6, and its bf16 rounding noise made a refit diverge in its first epoch.
            "bn_eps": 1.0e-5,
            "bn_weight_frozen": True,
        },
        "optimizer": {
            "name": "sgd",
            "sgd": {"lr_per_1024": 11.5, "momentum": 0.85, "weight_decay_per_1024": 0.0153},
            "bn_bias_lr_scale": 64,
        },
        "schedule": {
            "name": "triangular",
            "triangular": {"start_factor": 0.2, "peak_fraction": 0.23, "end_factor": 0.07},
        },
        "lookahead": {"enabled": True, "every_steps": 5, "decay": 0.95, "ramp_power": 3.0},
        "augment": {
            "crop_padding": max(1, a.image_size // 16),
            "pad_mode": "reflect",
            "hflip": True,
            "hflip_mode": "alternating",
        },
        "batch_size": batch_size,
        "eval_batch_size": 1000,
        "label_smoothing": 0.2,
        "tta_hflip": True,
        "tta_translate": True,
        "device": a.device,
        "precision": "auto",
        "loader": {"kind": "device"},
    }


def architecture(data: FolderSummary, machine: Machine, width: int | None = None) -> Architecture:
    """Image size, width and how trials share the machine: from the data and the machine.
    `width` is fastnet's (its stages have width, 4x and 4x channels); the narrowest a CPU
    trains (CPU_WIDTHS[0]) or GPU_WIDTH when not given."""
    cap = GPU_IMAGE_SIZE_CAP if machine.gpus else CPU_IMAGE_SIZE_CAP
    size = max(8, min(cap, data.short_side()))
    if machine.gpus:
        # Four small trials per GPU keep it busy (BENCHMARKS.md, "GPU": packing).
        concurrency = 4 * machine.gpus
        return Architecture(
            size, width or GPU_WIDTH, "cuda", concurrency, max(1, machine.cpus // concurrency), 0.25
        )
    return Architecture(size, width or CPU_WIDTHS[0], "cpu", machine.cpus, 1, 0.0)


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


def recipe_epochs(images: int) -> int:
    """The final training's length the recipe was made for, on a folder of `images`."""
    return max(RECIPE_EPOCHS, math.ceil(RECIPE_IMAGES_SEEN / max(1, images)))


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
    subset, val, trials, batch, max_t = _search_size(data, arch, speed, search_s, epochs)
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
        batch_size=batch,
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


def resolution_note(data: FolderSummary, val_images: int, metric: str) -> str:
    """What the search can tell apart: a searched config replaces the base config only when
    it leads by more than one standard error of a difference on the validation split
    (`tuner.results.comparison.noise_margin`), which the user should know before spending a
    budget on a search that a small split cannot resolve (few50: 10 points on 50 images)."""
    n_all = data.num_train
    per_class = [max(1, round(val_images * c / n_all)) for c in data.train_counts]
    labels = [label for label, n in enumerate(per_class) for _ in range(n)]
    eff = effective_images(labels, metric)
    at = {p: 100 * noise_margin(metric, p, eff) for p in (0.5, 0.9)}
    what = "balanced accuracy" if metric == "val_balanced_acc" else "accuracy"
    return (
        f"the search replaces the base config only with one ahead of it by more than the "
        f"{val_images:,} validation images can tell apart: {at[0.5]:.1f} points of {what} at "
        f"50%, {at[0.9]:.1f} at 90%; smaller gains stay unseen and the base config is trained"
    )


def _search_size(
    data: FolderSummary, arch: Architecture, speed: Speed, search_s: float, epochs: int
) -> tuple[int, int, int, int, int]:
    """(train subset, validation subset, trials, batch size, max_t) for a final training of
    `epochs`: the largest subset at which about TARGET_TRIALS trials of SHORT_HORIZON epochs
    fit the search's time, halving it until they do; and when every image fits with time to
    spare, trials as long as the final training (up to it), not more trials.

    Why the horizon grows: a config ranked at 6 epochs is the best at 6 epochs. On a small
    folder the final training runs for hundreds of epochs, and the search's 6-epoch winner
    lost to the default there (bench/results/own_data_imbalanced3_s12_*.json: -3.7 and -1.3
    points); a horizon closer to the final's ranks what the final training will see."""
    classes = len(data.classes)
    pool = int(data.num_train * 0.9)  # dataset.val_fraction 0.1 is carved before the subset
    val = min(int(data.num_train * 0.1), max(500, 10 * classes), 5000)
    floor = min(pool, max(200, MIN_SUBSET_PER_CLASS * classes))
    subset, max_t = pool, max(1, min(SHORT_HORIZON, epochs // 2))

    def trials_at(n: int, horizon: int) -> int:
        avg_epochs = max(1.0, 0.45 * horizon)  # ASHA stops most trials at its first rungs
        per_trial = TRIAL_OVERHEAD_S + avg_epochs * (
            n / speed.trial_images_per_s + val / (speed.trial_images_per_s * EVAL_SPEEDUP)
        )
        return int(search_s * arch.concurrency / per_trial)

    while subset > floor and trials_at(subset, max_t) < TARGET_TRIALS:
        subset = max(floor, subset // 2)
    if subset == pool:
        while max_t < epochs and trials_at(subset, max_t + 1) >= TARGET_TRIALS:
            max_t += 1
    trials = max(1, min(MAX_TRIALS, trials_at(subset, max_t)))
    return subset, val, trials, batch_for(subset), max_t


def calibration_batch(num_train: int) -> int:
    """The batch speeds are measured at: calibration's, or the plan's where a small folder
    gets a smaller one (there a step's own work dominates: on 8-px images batch 256 measured
    1.9x faster than the planned 64)."""
    return min(CALIBRATION_BATCH, batch_for(int(num_train * 0.9)))


def batch_for(images: int) -> int:
    """The batch size for a training subset of `images`: about 16 steps an epoch or more."""
    return int(2 ** int(math.log2(max(32, min(512, images // 16)))))
