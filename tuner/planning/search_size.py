"""How big the search is: its subset, validation split, trials, batch and horizon, from the
time the plan gives it and the measured speed of one trial; and what its validation split
can tell apart.

Pure arithmetic; imports `trainable.data.inspect` and `tuner.results.comparison` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainable.data.inspect import FolderSummary
from tuner.results.comparison import effective_images, noise_margin

TRIAL_OVERHEAD_S = 2.0  # a trial's start and its first report (issue #27: 1.1-1.5 s)
EVAL_SPEEDUP = 3.0  # evaluating an image costs about a third of training on it
TARGET_TRIALS = 12
SHORT_HORIZON = 6  # epochs a trial gets when the search must use a subset
MAX_TRIALS = 64
MIN_SUBSET_PER_CLASS = 20
CALIBRATION_BATCH = 256


@dataclass(frozen=True)
class SearchSize:
    trial_subset: int  # training images a trial sees, a stratified subset
    val_subset: int  # validation images every trial is measured on
    trials: int
    batch_size: int
    max_t: int  # epochs a trial may train


def search_size(
    data: FolderSummary,
    concurrency: int,
    trial_images_per_s: float,
    search_s: float,
    epochs: int,
) -> SearchSize:
    """The search's size, with `concurrency` trials at a time each training
    `trial_images_per_s`, for a final training of
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
            n / trial_images_per_s + val / (trial_images_per_s * EVAL_SPEEDUP)
        )
        return int(search_s * concurrency / per_trial)

    while subset > floor and trials_at(subset, max_t) < TARGET_TRIALS:
        subset = max(floor, subset // 2)
    if subset == pool:
        while max_t < epochs and trials_at(subset, max_t + 1) >= TARGET_TRIALS:
            max_t += 1
    trials = max(1, min(MAX_TRIALS, trials_at(subset, max_t)))
    return SearchSize(subset, val, trials, batch_for(subset), max_t)


def calibration_batch(num_train: int) -> int:
    """The batch speeds are measured at: calibration's, or the plan's where a small folder
    gets a smaller one (there a step's own work dominates: on 8-px images batch 256 measured
    1.9x faster than the planned 64)."""
    return min(CALIBRATION_BATCH, batch_for(int(num_train * 0.9)))


def batch_for(images: int) -> int:
    """The batch size for a training subset of `images`: about 16 steps an epoch or more."""
    return int(2 ** int(math.log2(max(32, min(512, images // 16)))))


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
