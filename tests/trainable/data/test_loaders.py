"""Both loaders must implement the same augmentation: zero-padded random crop + p=0.5 flip.

Each test image encodes coordinates in its pixels (red = column + 1, green = row + 1, so padding
reads as 0). After augmentation the output pixels reveal each sample's crop offsets and whether
it was flipped, which lets us compare the two pipelines' distributions, not just shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainable.config import AugmentConfig, LoaderConfig
from trainable.data import loaders
from trainable.data.augment import crop_flip, draw_augment
from trainable.data.datasets import ArrayDataset
from trainable.data.loaders import (
    DeviceLoader,
    channel_stats,
    make_dataloader,
    train_steps,
)

SIZE, PAD, N = 16, 3, 3000
MEAN, STD = [0.0, 0.0, 0.0], [1 / 255, 1 / 255, 1 / 255]  # normalisation leaves raw 0..255 values


def coordinate_images(n: int) -> ArrayDataset:
    img = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    img[:, :, 0] = np.arange(SIZE)[None, :] + 1
    img[:, :, 1] = np.arange(SIZE)[:, None] + 1
    return ArrayDataset(np.repeat(img[None], n, axis=0), np.zeros(n, dtype=np.int64))


def decode(batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offset_x, offset_y, flipped) per sample, from pixels at the image centre."""
    x = batch.float().round().numpy()
    c = SIZE // 2
    flipped = x[:, 0, c, c + 1] < x[:, 0, c, c]
    src_col = x[:, 0, c, c] - 1  # source column in the unpadded image
    offset_x = np.where(flipped, src_col - (SIZE - 1 - c), src_col - c) + PAD
    offset_y = x[:, 1, c, c] - 1 - c + PAD
    return offset_x, offset_y, flipped


def check_distribution(offset_x: np.ndarray, offset_y: np.ndarray, flipped: np.ndarray) -> None:
    assert 0.45 < flipped.mean() < 0.55
    for offsets in (offset_x, offset_y):
        assert offsets.min() == 0 and offsets.max() == 2 * PAD
        freq = np.bincount(offsets.astype(int), minlength=2 * PAD + 1) / len(offsets)
        assert np.all(np.abs(freq - 1 / (2 * PAD + 1)) < 0.03), freq


def test_device_loader_and_dataloader_augment_alike() -> None:
    data = coordinate_images(N)
    aug = AugmentConfig(crop_padding=PAD, hflip=True)
    device = DeviceLoader(
        data, 500, torch.device("cpu"), MEAN, STD, train=True, augment=aug, seed=1
    )
    classic = make_dataloader(
        data,
        500,
        MEAN,
        STD,
        LoaderConfig(num_workers=0),
        train=True,
        augment=aug,
        generator=torch.Generator().manual_seed(1),
    )
    stats = []
    for loader in (device, classic):
        batches = torch.cat([x for x, _ in loader])
        assert batches.shape == (N, 3, SIZE, SIZE) and batches.dtype == torch.float32
        ox, oy, fl = decode(batches)
        check_distribution(ox, oy, fl)
        # Padding shows up as zeros in the same share of pixels in both pipelines.
        stats.append(
            ((batches[:, 0] == 0).float().mean().item(), batches.mean(dim=(0, 2, 3)).numpy())
        )
    (zeros_a, mean_a), (zeros_b, mean_b) = stats
    assert abs(zeros_a - zeros_b) < 0.01
    assert np.allclose(mean_a, mean_b, atol=0.3)


def test_crop_flip_is_an_exact_shifted_window() -> None:
    img = torch.arange(2 * 3 * 5 * 5, dtype=torch.uint8).reshape(2, 3, 5, 5)
    draws = draw_augment(
        2, AugmentConfig(crop_padding=2, hflip=True), torch.Generator().manual_seed(0)
    )
    out = crop_flip(img, padding=2, draws=draws)
    padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
    for b in range(2):
        oy, ox = int(draws.offsets_y[b]), int(draws.offsets_x[b])
        window = padded[b, :, oy : oy + 5, ox : ox + 5]
        expected = window.flip(-1) if draws.flip[b] else window
        assert torch.equal(out[b], expected)


def test_eval_batches_are_unaugmented_ordered_and_complete() -> None:
    data = coordinate_images(10)
    loader = DeviceLoader(data, 4, torch.device("cpu"), MEAN, STD, train=False)
    batches = [x for x, _ in loader]
    assert [len(b) for b in batches] == [4, 4, 2]
    assert torch.equal(
        torch.cat(batches)[0, 0].round().to(torch.uint8), torch.from_numpy(data.images[0, :, :, 0])
    )


def test_epoch_order_is_reproducible_and_changes_between_epochs() -> None:
    data = ArrayDataset(np.zeros((64, 4, 4, 3), dtype=np.uint8), np.arange(64))
    loader = DeviceLoader(data, 64, torch.device("cpu"), MEAN, STD, train=True, seed=3)
    loader.set_epoch(1)
    first = next(iter(loader))[1]
    assert torch.equal(first, next(iter(loader))[1])
    loader.set_epoch(2)
    assert not torch.equal(first, next(iter(loader))[1])


def test_both_loaders_have_the_train_steps_the_schedule_is_built_for() -> None:
    for n in (40, 64, 100, 128, 129):
        data = ArrayDataset(np.zeros((n, 4, 4, 3), dtype=np.uint8), np.zeros(n, dtype=np.int64))
        device = DeviceLoader(data, 64, torch.device("cpu"), MEAN, STD, train=True)
        classic = make_dataloader(data, 64, MEAN, STD, LoaderConfig(num_workers=0), train=True)
        assert len(device) == len(classic) == len(list(classic)) == train_steps(n, 64), n


def test_channel_stats_by_blocks_equal_the_whole_split_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = np.random.default_rng(0).integers(0, 256, (50, 6, 6, 3), dtype=np.uint8)
    monkeypatch.setattr(loaders, "_STATS_BLOCK_VALUES", 7 * 6 * 6 * 3)  # 8 blocks, one ragged
    mean, std = channel_stats(images)
    x = images.reshape(-1, 3) / 255.0
    assert np.allclose(mean, x.mean(axis=0), rtol=0, atol=1e-12)
    assert np.allclose(std, x.std(axis=0), rtol=0, atol=1e-9)
