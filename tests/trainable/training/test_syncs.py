"""The hot loops never wait for the device: nothing is read back or copied per batch.

On a CPU every tensor is host memory, so copies cannot be seen there; the loader's copies are
checked on the `meta` device (shapes without data: a device the host must copy to), and the
trainer's reads of device values on the CPU, where they are visible as ATen ops.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from trainable.config import AugmentConfig, TrainConfig
from trainable.data.datasets import ArrayDataset
from trainable.data.loaders import DeviceLoader
from trainable.training.engine import train
from trainable.training.syncs import SyncCount, count_host_syncs

META = torch.device("meta")


def test_counts_reads_copies_and_data_dependent_shapes() -> None:
    t = torch.arange(6.0)
    with count_host_syncs(torch.device("cpu")) as count:
        t.sum().item()
        bool((t > 2).any())
        t.nonzero()
        t.to(META)
    assert (count.reads, count.data_dependent_shapes, count.copies_to_device) == (2, 1, 1)
    assert count.copies_to_host == 0 and count.cuda_syncs is None  # no CUDA: not measured
    assert any("_local_scalar_dense" in e for e in count.examples)
    # Watching another device, a host value read is no wait for it.
    with count_host_syncs(META) as meta_count:
        t.sum().item()
        t.to(META)
    assert (meta_count.reads, meta_count.copies_to_device) == (0, 1)


def test_other_warnings_still_reach_the_caller() -> None:
    with pytest.warns(UserWarning, match="unrelated"), count_host_syncs(torch.device("cpu")):
        import warnings

        warnings.warn("unrelated", UserWarning, stacklevel=1)


def loader_epoch_count(batch_size: int) -> tuple[SyncCount, int]:
    data = ArrayDataset(np.zeros((240, 8, 8, 3), np.uint8), np.zeros(240, np.int64))
    aug = AugmentConfig(crop_padding=2, hflip=True)
    loader = DeviceLoader(
        data, batch_size, META, [0.5] * 3, [0.25] * 3, train=True, augment=aug, channels_last=True
    )
    loader.set_epoch(1)
    with count_host_syncs(META) as count:
        shapes = [x.shape for x, _ in loader]
    assert shapes[0] == (batch_size, 3, 8, 8)
    return count, len(shapes)


def test_device_loader_copies_once_per_epoch_whatever_the_batch_count() -> None:
    (few, n_few), (many, n_many) = loader_epoch_count(120), loader_epoch_count(16)
    assert (n_few, n_many) == (2, 15)
    for count in (few, many):
        # The shuffle order and every augmentation draw travel together, once.
        assert count.copies_to_device == 1, count.examples
        assert count.reads == count.copies_to_host == count.data_dependent_shapes == 0


def test_training_reads_nothing_back_per_batch(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    """A whole train() call (epochs, evaluation, checkpoints, final metrics) reads the same
    number of device values whether an epoch has 4 batches or 16: none of them is per batch."""
    counts = []
    for batch_size, eval_batch_size in ((128, 128), (32, 16)):
        cfg = tiny_config(epochs=2, batch_size=batch_size, eval_batch_size=eval_batch_size)
        with count_host_syncs(torch.device("cpu")) as count:
            train(cfg, tmp_path / str(batch_size), report=lambda *_: None)
        counts.append(count)
    few, many = counts
    assert (few.reads, few.data_dependent_shapes) == (many.reads, many.data_dependent_shapes)
    # fp16 + GradScaler with a non-fused optimiser would read a found-inf flag every step.
    fp16 = tiny_config(epochs=1, precision="fp16")
    with count_host_syncs(torch.device("cpu")) as scaled:
        train(fp16, tmp_path / "fp16", report=lambda *_: None)
    fp16_more = tiny_config(epochs=1, precision="fp16", batch_size=32)
    with count_host_syncs(torch.device("cpu")) as scaled_more:
        train(fp16_more, tmp_path / "fp16-more", report=lambda *_: None)
    assert scaled.reads == scaled_more.reads


def test_the_airbench_recipe_reads_nothing_back_per_batch(
    recipe_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    """SGD, lookahead (every 5 steps), the whitening init and translate TTA add no read
    that grows with the number of batches."""
    for precision in ("fp32", "fp16"):  # fp16: the GradScaler's found-inf flag stays on device
        counts = []
        for batch_size in (128, 32):
            cfg = recipe_config(
                epochs=2, batch_size=batch_size, eval_batch_size=batch_size, precision=precision
            )
            with count_host_syncs(torch.device("cpu")) as count:
                train(cfg, tmp_path / f"{precision}-{batch_size}", report=lambda *_: None)
            counts.append(count)
        few, many = counts
        assert (few.reads, few.data_dependent_shapes) == (many.reads, many.data_dependent_shapes)
