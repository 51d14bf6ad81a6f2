"""airbench's augmentations: reflect-padded translation, alternating flips, translate TTA."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainable.data.test_loaders import MEAN, PAD, STD, coordinate_images, decode
from trainable.config import AugmentConfig, LoaderConfig, TrainConfig, build_config
from trainable.data.augment import alternating_flips, crop_flip, draw_augment
from trainable.data.datasets import ArrayDataset
from trainable.data.loaders import (
    DeviceLoader,
    make_dataloader,
)
from trainable.errors import ConfigError
from trainable.training.engine import train
from trainable.training.evaluation import TTA, logits_of, tta_views
from trainable.training.runtime import Runtime


def test_reflect_crop_is_a_window_of_the_reflect_padded_image() -> None:
    img = torch.arange(4 * 3 * 6 * 6, dtype=torch.uint8).reshape(4, 3, 6, 6)
    aug = AugmentConfig(crop_padding=2, pad_mode="reflect", hflip=True)
    draws = draw_augment(4, aug, torch.Generator().manual_seed(3))
    out = crop_flip(img, 2, draws, reflect=True)
    padded = torch.nn.functional.pad(img.float(), (2, 2, 2, 2), mode="reflect").to(torch.uint8)
    for b in range(4):
        oy, ox = int(draws.offsets_y[b]), int(draws.offsets_x[b])
        window = padded[b, :, oy : oy + 6, ox : ox + 6]
        assert torch.equal(out[b], window.flip(-1) if draws.flip[b] else window)


def test_both_loaders_translate_with_reflection_not_black_borders() -> None:
    data = coordinate_images(2000)
    aug = AugmentConfig(crop_padding=PAD, pad_mode="reflect", hflip=False)
    device = DeviceLoader(
        data, 500, torch.device("cpu"), MEAN, STD, train=True, augment=aug, seed=1
    )
    classic = make_dataloader(
        data, 500, MEAN, STD, LoaderConfig(num_workers=0), train=True, augment=aug
    )
    for loader in (device, classic):
        x = torch.cat([b for b, _ in loader])
        assert (x[:, :2] > 0).all()  # every pixel is a real pixel's coordinates: no zeros
        ox, oy, _ = decode(x)  # the centre pixel is never reflected at PAD < SIZE / 2
        for offsets in (ox, oy):
            assert offsets.min() == 0 and offsets.max() == 2 * PAD


def test_alternating_flips_each_image_in_exactly_one_of_two_consecutive_epochs() -> None:
    n = 1001
    epochs = [alternating_flips(n, seed=7, epoch=e) for e in (1, 2, 3, 4)]
    assert int(epochs[0].sum()) == n // 2  # epoch 1: a random half
    for a, b in itertools.pairwise(epochs):
        assert torch.equal(a ^ b, torch.ones(n, dtype=torch.bool))
    assert not torch.equal(epochs[0], alternating_flips(n, seed=8, epoch=1))  # seeded
    # Spread over the images, not a block: both halves of the dataset are about half flipped.
    assert 0.4 < epochs[0][: n // 2].float().mean() < 0.6


def test_device_loader_applies_the_alternating_flips_to_the_right_images() -> None:
    data = coordinate_images(600)
    data = ArrayDataset(data.images, np.arange(600))  # labels identify the images
    aug = AugmentConfig(crop_padding=0, hflip=True, hflip_mode="alternating")
    loader = DeviceLoader(
        data, 100, torch.device("cpu"), MEAN, STD, train=True, augment=aug, seed=2
    )
    flipped = []
    for epoch in (1, 2, 3):
        loader.set_epoch(epoch)
        per_image = torch.zeros(600, dtype=torch.bool)
        for x, y in loader:
            per_image[y] = torch.from_numpy(decode(x)[2])
        flipped.append(per_image)
        assert torch.equal(per_image, alternating_flips(600, 2, epoch))
    assert torch.equal(flipped[0] ^ flipped[1], torch.ones(600, dtype=torch.bool))
    assert torch.equal(flipped[0], flipped[2])


def test_alternating_flips_need_the_device_loader() -> None:
    with pytest.raises(
        ConfigError, match=r"augment.hflip_mode=alternating needs loader.kind=device"
    ):
        build_config(None, ["augment.hflip_mode=alternating", "loader.kind=dataloader"])


def test_reflect_padding_must_be_smaller_than_the_image(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    cfg = tiny_config(augment={"crop_padding": 16, "pad_mode": "reflect"})
    with pytest.raises(ConfigError, match=r"augment.crop_padding=16 .* image size \(16\)"):
        train(cfg, tmp_path, report=lambda *_: None)
    assert not list(tmp_path.iterdir())


def test_translate_tta_views_are_mirrors_and_one_pixel_shifts() -> None:
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    views = tta_views(x, TTA(hflip=True, translate=True))
    weights = [w for w, _ in views]
    assert weights == pytest.approx([0.25, 0.25, 0.125, 0.125, 0.125, 0.125])
    plain, mirror, up_left, up_left_m, down_right, down_right_m = (v for _, v in views)
    assert torch.equal(plain, x) and torch.equal(mirror, x.flip(3))
    # Shifted by one pixel: output (i, j) shows input (i - 1, j - 1), the border reflected.
    assert torch.equal(up_left[:, :, 1:, 1:], x[:, :, :-1, :-1])
    assert torch.equal(up_left[:, :, 0, 0], x[:, :, 1, 1])
    assert torch.equal(down_right[:, :, :-1, :-1], x[:, :, 1:, 1:])
    assert torch.equal(down_right[:, :, -1, -1], x[:, :, -2, -2])
    assert torch.equal(up_left_m, up_left.flip(3)) and torch.equal(down_right_m, down_right.flip(3))
    assert len(tta_views(x, TTA(hflip=False, translate=True))) == 3
    assert [w for w, _ in tta_views(x, TTA(hflip=False, translate=True))] == [0.5, 0.25, 0.25]


def test_translate_tta_logits_are_the_weighted_mean_over_views() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(5))
    x = torch.randn(2, 3, 6, 6)
    net(x)
    rt = Runtime(torch.device("cpu"), torch.float32)
    tta = TTA(hflip=True, translate=True)
    expected = sum(w * net(v) for w, v in tta_views(x, tta))
    assert torch.allclose(logits_of(net, x, rt, tta), expected, atol=1e-5)
    assert not torch.allclose(logits_of(net, x, rt, tta), logits_of(net, x, rt, True), atol=1e-3)
