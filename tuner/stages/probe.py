"""How long one epoch of the final training takes, measured where and as it will run.

A run with a budget sizes its final training once the search is done. Deriving the epoch time
from the trials' speed and the calibrated whole-machine speed-up missed by 25-30% either way
(BENCHMARKS.md, "Own data", session 13): the trials ran side by side, one core each, and a
small folder's epochs carry fixed costs (the checkpoint, the report) that the speed leaves
out. The probe trains the final config for a few epochs (`probe_epochs`) on at most
`PROBE_IMAGES` of its images, as a Ray task with the final training's resources, and scales
each epoch to every image:

    epoch_s = train_s * images / probed_images + evaluation + write_s * min(1, epoch / interval)

Its first epoch stands for the final training's first ones (a whitening stem's bias trains
then, which is slower), the median of the others for the rest. A small folder's epochs are
short and vary (few50's 0.4-s epochs moved ±8% from one to the next, and one steady epoch
missed the final training's median by that much, session 17): the fewer images probed, the
more epochs, up to `MAX_PROBE_EPOCHS`, so that the probe trains about
`PROBE_EPOCHS * PROBE_IMAGES` images in all. The final training writes its checkpoint every
`checkpoint_interval_s`, not every epoch: the probe writes once, at its end, and each epoch
is charged that write's share (all of it where epochs outlast the interval). Charging a whole
write to every 2-s epoch had planned 3.5% too few epochs (session 17).

Costs a few seconds: at most 16,384 images' training, and the task's start.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from typing import Any

import numpy as np
import ray

from trainable.config import TrainConfig, build_config
from trainable.data.datasets import Splits
from trainable.errors import ConfigError
from trainable.files.checkpoint import SavePolicy
from trainable.training.engine import train
from trainable.vocab import DIVERGED
from tuner.integrations.cluster import user_errors_from_ray
from tuner.search.limits import cap_gpu_memory

PROBE_EPOCHS = 2  # the fewest: a first epoch and a steady one
MAX_PROBE_EPOCHS = 8
PROBE_IMAGES = 8192


def probe_epochs(probed: int) -> int:
    """Epochs enough to train about `PROBE_EPOCHS * PROBE_IMAGES` images, within
    [`PROBE_EPOCHS`, `MAX_PROBE_EPOCHS`]: 2 for a large folder, 8 below 2,048 images."""
    wanted = math.ceil(PROBE_EPOCHS * PROBE_IMAGES / max(1, probed))
    return min(MAX_PROBE_EPOCHS, max(PROBE_EPOCHS, wanted))


def measure_epoch(
    config_dict: dict[str, Any], data: Splits, gpu_fraction: float, save_every_s: float = 0.0
) -> dict[str, float]:
    """The probe in this process: `probe_epoch_s` runs it as a Ray task with the final
    training's resources; a plain process (the own-data bench's default arm) calls it as is."""
    config = build_config(config_dict)
    if config.dataset.val_fraction == 0:  # a refit trains on the validation images too
        data = data.without_validation()
    images = len(data.train)
    probed = min(images, PROBE_IMAGES)
    data = dataclasses.replace(data, train=data.train.take(np.arange(probed)))
    cap_gpu_memory(gpu_fraction)
    # A whitening stem trains its bias for its first epochs, about 40% slower (gray28: 1.5 s
    # an epoch, then 1.08 s): the probe's first epoch is such an epoch, the others not.
    slow_epochs = config.model.whiten.bias_epochs if config.model.stem == "whiten" else 0
    n_epochs = probe_epochs(probed)
    short = config.to_dict() | {"epochs": n_epochs}
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
                save_policy=SavePolicy(interval_s=math.inf),  # one write, at the end
            )
    except ConfigError:  # e.g. a schedule too short for the probe's epochs of a tiny folder
        return {}
    # A diverging config reports its last epoch without timings; the final training retries
    # it at a lower lr, at the same speed, so the epochs timed before still count.
    timed = [m for m in epochs if "train_s" in m and not m.get(DIVERGED)]
    if len(timed) < PROBE_EPOCHS:
        return {}
    first, *rest = (full_epoch_s(m, images, probed) for m in timed)
    steady = float(np.median(rest))
    # the one write, after the last epoch (none where it diverged before)
    write_s = timed[-1].get("checkpoint_s", 0.0) if len(timed) == n_epochs else 0.0
    return {
        "epoch_s": steady + write_share(write_s, steady, save_every_s),
        # what the slower first epochs add to the run, beyond `epoch_s` each
        "first_epochs_extra_s": slow_epochs * max(0.0, first - steady),
        "probed_images": float(probed),
        "probe_epochs": float(len(timed)),
        "write_s": write_s,
    }


def full_epoch_s(metrics: dict[str, float], images: int, probed: int) -> float:
    """An epoch of `images` from one of `probed`, without its checkpoint: the training scales
    with the images, the rest of the epoch (evaluation) does not."""
    train_s = metrics["train_s"]
    return train_s * images / probed + max(0.0, metrics["epoch_s"] - train_s)


def write_share(write_s: float, epoch_s: float, interval_s: float) -> float:
    """An epoch's share of the checkpoint writes at one every `interval_s` (0: every epoch):
    a write follows the first epoch to end `interval_s` after the last one, so epochs longer
    than the interval pay a write each, shorter ones about `epoch_s / interval_s` of one (a
    write every ceil(interval / epoch) epochs: at most one epoch's worth more)."""
    if interval_s <= epoch_s:
        return write_s
    return write_s * epoch_s / interval_s


def probe_epoch_s(
    config: TrainConfig, data_ref: Any, cpus: float, gpu: float, save_every_s: float
) -> dict[str, float]:
    """{"epoch_s", "first_epochs_extra_s", "probed_images", "probe_epochs", "write_s"}: one
    epoch of `config` on every one of its training images, checkpointed every `save_every_s`;
    {} when the probe's epochs of it cannot be trained, or it diverges before two (the caller
    falls back to an estimate)."""
    task = ray.remote(measure_epoch).options(num_cpus=cpus, num_gpus=gpu)
    with user_errors_from_ray():
        ref = task.remote(config.to_dict(), data_ref, gpu, save_every_s)
        measured: dict[str, float] = ray.get(ref)
    return measured
