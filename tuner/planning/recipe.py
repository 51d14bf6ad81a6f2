"""What is trained: the recipe (airbench94's elements, as in quick.yaml) at a size, width and
device chosen from the folder and the machine, and how long the recipe was made to train.

Pure functions of the folder's summary and the machine; `tuner.planning.plan` sizes the run
around them. Imports only `trainable.data.inspect` and `tuner.planning.machine`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainable.data.inspect import FolderSummary
from tuner.planning.machine import Machine

CPU_IMAGE_SIZE_CAP = 32  # px: a CPU budget buys more epochs at a small size
GPU_IMAGE_SIZE_CAP = 128
# The model's width. On a CPU, the widest of CPU_WIDTHS whose final training still gets the
# recipe's length (tuner.planning.width): on CIFAR-10, width 16 trained for 68 epochs in a
# 10-minute run reached 87.44% (BENCHMARKS.md, "Own data"), while airbench94's width 64 for
# its 10 epochs reached 90.85% in 449 s; capacity is worth more than epochs past the recipe's.
CPU_WIDTHS = (16, 32, 48, 64)
GPU_WIDTH = 64
# The recipe's length: airbench94's hyperparameters were tuned for 10 epochs of CIFAR-10's
# 50,000 images; a smaller folder needs more epochs for as many optimizer updates (the
# default on a 2,800-image folder gained from 40 to 400 epochs, see plan.MAX_RETRAIN_STEPS).
RECIPE_EPOCHS = 10
RECIPE_IMAGES_SEEN = 500_000
# The searched keys and their ranges, around the recipe's values (which the search runs first).
SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "optimizer.sgd.lr_per_1024": {"type": "loguniform", "low": 4.0, "high": 30.0},
    "optimizer.sgd.weight_decay_per_1024": {"type": "loguniform", "low": 0.005, "high": 0.05},
    "label_smoothing": {"type": "uniform", "low": 0.0, "high": 0.3},
    "augment.hflip": {"type": "choice", "values": [True, False]},
}


@dataclass(frozen=True)
class Architecture:
    """What is trained, chosen from the data and the machine before anything is measured."""

    image_size: int
    width: int
    device: str
    concurrency: int  # trials at a time
    cpus_per_trial: int
    gpu_per_trial: float


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


def recipe_epochs(images: int) -> int:
    """The final training's length the recipe was made for, on a folder of `images`."""
    return max(RECIPE_EPOCHS, math.ceil(RECIPE_IMAGES_SEEN / max(1, images)))
