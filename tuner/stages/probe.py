"""How long one epoch of the final training takes, measured where and as it will run.

A run with a budget sizes its final training once the search is done. Deriving the epoch time
from the trials' speed and the calibrated whole-machine speed-up missed by 25-30% either way
(BENCHMARKS.md, "Own data", session 13): the trials ran side by side, one core each, and a
small folder's epochs carry fixed costs (the checkpoint, the report) that the speed leaves
out. The probe trains the final config for `PROBE_EPOCHS` epochs on at most `PROBE_IMAGES`
of its images, as a Ray task with the final training's resources, and scales each epoch to
every image:

    epoch_s = train_s * images / probed_images + (evaluation + checkpoint)

Its first epoch stands for the final training's first ones (a whitening stem's bias trains
then, which is slower), its second for the rest.

Costs a few seconds: two epochs of at most 8,192 images, and the task's start.
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

import numpy as np
import ray

from trainable.config import TrainConfig, build_config
from trainable.data.datasets import Splits
from trainable.errors import ConfigError
from trainable.training.engine import train
from tuner.integrations.cluster import user_errors_from_ray
from tuner.search.limits import cap_gpu_memory

PROBE_EPOCHS = 2
PROBE_IMAGES = 8192


def _probe(config_dict: dict[str, Any], data: Splits, gpu_fraction: float) -> dict[str, float]:
    config = build_config(config_dict)
    if config.dataset.val_fraction == 0:  # a refit trains on the validation images too
        data = data.without_validation()
    images = len(data.train)
    probed = min(images, PROBE_IMAGES)
    data = dataclasses.replace(data, train=data.train.take(np.arange(probed)))
    cap_gpu_memory(gpu_fraction)
    # A whitening stem trains its bias for its first epochs, about 40% slower (gray28: 1.5 s
    # an epoch, then 1.08 s): the probe's first epoch is such an epoch, its second one not.
    slow_epochs = config.model.whiten.bias_epochs if config.model.stem == "whiten" else 0
    short = config.to_dict() | {"epochs": PROBE_EPOCHS}
    if slow_epochs:
        short["model"] = short["model"] | {"whiten": short["model"]["whiten"] | {"bias_epochs": 1}}
    epochs: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="hpsearch-probe-") as out:
            train(
                build_config(short),
                out,
                report=lambda m, _c: epochs.append(dict(m)),
                data=data,
                evaluate_best=False,
            )
    except ConfigError:  # e.g. a schedule too short for 2 epochs of a tiny folder
        return {}
    if len(epochs) < PROBE_EPOCHS:  # it diverged (the final training retries at a lower lr)
        return {}
    first, steady = (full_epoch_s(m, images, probed) for m in epochs[:2])
    return {
        "epoch_s": steady,
        # what the slower first epochs add to the run, beyond `epoch_s` each
        "first_epochs_extra_s": slow_epochs * max(0.0, first - steady),
        "probed_images": float(probed),
    }


def full_epoch_s(metrics: dict[str, float], images: int, probed: int) -> float:
    """An epoch of `images` from one of `probed`: the training scales with the images, the
    rest of the epoch (evaluation, checkpoint) does not."""
    train_s = metrics["train_s"]
    rest = metrics["epoch_s"] - train_s + metrics.get("checkpoint_s", 0.0)
    return train_s * images / probed + max(0.0, rest)


def probe_epoch_s(config: TrainConfig, data_ref: Any, cpus: float, gpu: float) -> dict[str, float]:
    """{"epoch_s", "probed_images"}: one epoch of `config` on every one of its training images;
    {} when two epochs of it cannot be trained or diverge (the caller falls back to an
    estimate)."""
    task = ray.remote(_probe).options(num_cpus=cpus, num_gpus=gpu)
    with user_errors_from_ray():
        measured: dict[str, float] = ray.get(task.remote(config.to_dict(), data_ref, gpu))
    return measured
