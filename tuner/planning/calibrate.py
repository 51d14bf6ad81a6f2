"""How fast the planned model trains on this machine: measured, not guessed.

The planned base config trains for three short epochs on synthetic images of the planned
size and class count (the product's own `train()`, so the figure includes its loader,
precision and recipe); the fastest epoch after the first gives the speed. Once with a trial's share of the
threads and once with all of them (the final training's)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from trainable.config import build_config, deep_merge
from tuner.planning.plan import Speed
from tuner.planning.recipe import Architecture
from tuner.planning.search_size import CALIBRATION_BATCH

CALIBRATION_STEPS = 6  # batches an epoch
CALIBRATION_EPOCHS = 3


def measure(
    base: dict[str, Any],
    arch: Architecture,
    num_classes: int,
    cpus: int,
    whole: float | None = None,
    batch: int = CALIBRATION_BATCH,
) -> Speed:
    """A trial's speed and the whole machine's (`whole` when already measured)."""
    t0 = time.perf_counter()
    print(
        f"measuring how fast the planned model trains here ({arch.image_size} px, width "
        f"{arch.width}) ...",
        file=sys.stderr,
        flush=True,
    )
    trial = images_per_s(base, arch, num_classes, arch.cpus_per_trial, batch)
    if whole is None:
        whole = (
            trial
            if cpus == arch.cpus_per_trial
            else images_per_s(base, arch, num_classes, cpus, batch)
        )
    if arch.device == "cuda":  # trials share a GPU: each gets about its share of the card
        trial = whole * arch.gpu_per_trial
    else:
        whole = bounded(trial, whole, cpus / arch.cpus_per_trial)
    return Speed(trial, whole, time.perf_counter() - t0)


def bounded(trial: float, whole: float, threads_ratio: float) -> float:
    """The whole machine's speed, between one trial's and one trial's per thread: more
    threads never train slower on average, so a measurement that says so was disturbed (seen
    once: 0.58x, and a 10-minute CIFAR-10 run planned 13 final epochs where 35 fit)."""
    return min(max(whole, trial), trial * threads_ratio)


def images_per_s(
    base: dict[str, Any],
    arch: Architecture,
    num_classes: int,
    threads: int,
    batch: int = CALIBRATION_BATCH,
) -> float:
    """Training images/s at `batch` (the plan's, for a small folder: on 8-px images a step's
    own work dominates, and batch 256 measured 1.9x faster than the planned 64)."""
    from trainable.training.engine import train

    n = batch * CALIBRATION_STEPS
    config = build_config(
        deep_merge(
            base,
            {
                "dataset": {
                    "name": "synthetic",
                    "num_classes": num_classes,
                    "image_size": arch.image_size,
                    "synthetic_train_size": int(n / 0.9) + 1,
                    "synthetic_test_size": 10,
                    "val_fraction": 0.1,
                    "train_subset": None,
                    "val_subset": None,
                },
                "model": {"whiten": {"images": n}},
                "batch_size": batch,
                "epochs": CALIBRATION_EPOCHS,
                "tta_hflip": False,
                "tta_translate": False,
            },
        )
    )
    history: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as out, _threads(threads):
        train(config, out, report=lambda m, _d: history.append(m), evaluate_best=False)
    # The fastest epoch after the first (which pays the start-up): the least disturbed one.
    return max(float(m["images_per_s"]) for m in history[1:])


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
