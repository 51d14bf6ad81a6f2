"""A split's statistics once per process (trainable/data/memo.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainable.data.test_data import make_tree
from trainable.config import DatasetConfig, TrainConfig
from trainable.data import loaders, memo
from trainable.data.datasets import load_splits
from trainable.files import checkpoint
from trainable.model import layers
from trainable.training.engine import train


@pytest.fixture(autouse=True)
def empty_memo() -> Iterator[None]:
    memo.forget()
    yield
    memo.forget()


def test_a_key_names_the_content_not_the_object() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    b = a.copy()
    assert memo.images_key(a) == memo.images_key(b)  # another array, the same images
    b[7, 3, 3, 1] ^= 1  # one value of one pixel
    assert memo.images_key(a) != memo.images_key(b)
    assert memo.images_key(a) != memo.images_key(a[:19])
    assert memo.images_key(a[::2]) == memo.images_key(np.ascontiguousarray(a[::2]))


def test_a_mapped_split_is_named_by_its_cache_and_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path / "cache"))
    make_tree(tmp_path / "tree", ["a", "b"], per_class=10, size=(12, 12))
    cfg = DatasetConfig(name="imagefolder", root=str(tmp_path / "tree"), image_size=8)
    first, again = load_splits(cfg), load_splits(cfg)
    assert memo.images_key(first.train.images) == memo.images_key(again.train.images)
    assert memo.images_key(first.train.images) != memo.images_key(first.val.images)


def test_memoised_computes_once_per_key_and_keeps_the_latest() -> None:
    calls: list[int] = []

    def compute(i: int) -> Callable[[], int]:
        return lambda: calls.append(i) or i * 10

    assert memo.memoised(("k", 1), compute(1)) == 10
    assert memo.memoised(("k", 1), compute(1)) == 10
    assert calls == [1]
    for i in range(2, 2 + memo._KEPT):  # pushes key 1 out: the oldest
        memo.memoised(("k", i), compute(i))
    memo.memoised(("k", 1), compute(1))
    assert calls.count(1) == 2


def test_channel_stats_hand_out_fresh_lists() -> None:
    images = np.random.default_rng(1).integers(0, 256, (30, 6, 6, 3), dtype=np.uint8)
    key = memo.images_key(images)
    mean, std = memo.channel_stats_of(images, key)
    assert (mean, std) == loaders.channel_stats(images)
    mean[0] = -1.0  # a caller's own copy
    assert memo.channel_stats_of(images, key)[0] == loaders.channel_stats(images)[0]


def test_a_second_run_on_the_same_images_reuses_their_statistics(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    recipe_config: Callable[..., TrainConfig],
) -> None:
    """What a reused trial process does: train() again on the same split. The channel
    statistics and the whitening covariance are computed once, and the run is unchanged."""
    counted = {"stats": 0, "covariance": 0}

    def counting(name: str, real: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            counted[name] += 1
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(memo, "channel_stats", counting("stats", memo.channel_stats))
    monkeypatch.setattr(
        "trainable.model.network.patch_covariance",
        counting("covariance", layers.patch_covariance),
    )
    cfg = recipe_config(epochs=1)
    data = load_splits(cfg.dataset)
    first = train(cfg, tmp_path / "a", data=data, report=lambda *_: None)
    second = train(cfg, tmp_path / "b", data=data, report=lambda *_: None)
    assert counted == {"stats": 1, "covariance": 1}
    memo.forget()
    fresh = train(cfg, tmp_path / "c", data=data, report=lambda *_: None)
    assert counted == {"stats": 2, "covariance": 2}
    # the whitening stem's filters (fixed; the first layer), as each run saved them
    weights = [
        checkpoint.load(r.best_checkpoint)["model"]["0.weight"] for r in (first, second, fresh)
    ]
    assert torch.equal(weights[0], weights[1]) and torch.equal(weights[0], weights[2])
