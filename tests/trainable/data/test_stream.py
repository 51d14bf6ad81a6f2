"""The streaming loader yields the device loader's batches exactly, from memory or from the
memory-mapped decode cache, and `loader.kind: device` switches to it when a split does not fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainable.data.test_data import make_tree
from trainable.config import AugmentConfig, TrainConfig
from trainable.data.datasets import ArrayDataset, load_splits
from trainable.data.loaders import DeviceLoader, StreamLoader, planned_loader
from trainable.data.mapped import MappedImages
from trainable.training.engine import train

CPU = torch.device("cpu")
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def _random_images(n: int, size: int = 12) -> ArrayDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return ArrayDataset(images, rng.integers(0, 5, n).astype(np.int64))


def _epochs(loader: DeviceLoader | StreamLoader, epochs: int) -> list[tuple[torch.Tensor, ...]]:
    out = []
    for epoch in range(1, epochs + 1):
        loader.set_epoch(epoch)
        out += [(x, y) for x, y in loader]
    return out


def _assert_same(a: list[tuple[torch.Tensor, ...]], b: list[tuple[torch.Tensor, ...]]) -> None:
    assert len(a) == len(b) > 0
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert xa.is_contiguous(memory_format=torch.channels_last) == xb.is_contiguous(
            memory_format=torch.channels_last
        )


@pytest.mark.parametrize("prefetch", [1, 3])
def test_stream_batches_equal_device_batches_in_training(prefetch: int) -> None:
    data = _random_images(203)
    aug = AugmentConfig(crop_padding=2, pad_mode="reflect", hflip=True, hflip_mode="alternating")
    common = {"train": True, "augment": aug, "channels_last": True, "seed": 7}
    device = DeviceLoader(data, 32, CPU, MEAN, STD, **common)  # type: ignore[arg-type]
    stream = StreamLoader(data, 32, CPU, MEAN, STD, prefetch=prefetch, **common)  # type: ignore[arg-type]
    assert len(device) == len(stream) == 6  # the ragged last batch dropped in both
    _assert_same(_epochs(device, 3), _epochs(stream, 3))


def test_stream_batches_equal_device_batches_in_evaluation() -> None:
    data = _random_images(70)
    device = DeviceLoader(data, 32, CPU, MEAN, STD, train=False)
    stream = StreamLoader(data, 32, CPU, MEAN, STD, train=False)
    assert [len(y) for _, y in stream] == [32, 32, 6]
    _assert_same(_epochs(device, 1), _epochs(stream, 1))


def test_streaming_from_the_decode_cache_reads_the_same_images(
    folder: dict[str, str], tiny_config: Callable[..., TrainConfig]
) -> None:
    cfg = tiny_config(dataset=folder)
    split = load_splits(cfg.dataset).train
    assert isinstance(split.images, MappedImages)
    in_memory = ArrayDataset(np.asarray(split.images), split.labels)
    aug = AugmentConfig(crop_padding=2)
    a = StreamLoader(split, 8, CPU, MEAN, STD, train=True, augment=aug, seed=1)
    b = DeviceLoader(in_memory, 8, CPU, MEAN, STD, train=True, augment=aug, seed=1)
    _assert_same(_epochs(a, 2), _epochs(b, 2))


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A 16x16 image folder of 3 classes x 24 images: its trainer dataset keys."""
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path / "cache"))
    make_tree(tmp_path / "tree", ["a", "b", "c"], per_class=24, size=(16, 16))
    return {"name": "imagefolder", "root": str(tmp_path / "tree")}


def test_device_kind_streams_a_split_too_big_for_memory_and_says_so(
    folder: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tiny_config: Callable[..., TrainConfig],
) -> None:
    cfg = tiny_config(dataset=folder)
    # 57 of the 72 images (5 per class held out for validation), 16x16: 43.8 KB decoded
    split = load_splits(cfg.dataset).train
    capsys.readouterr()  # the decode's progress lines
    monkeypatch.setenv("HPSEARCH_HOST_MEMORY_BYTES", str(10**6))
    assert isinstance(planned_loader(cfg, split, CPU, MEAN, STD, train=True), DeviceLoader)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("HPSEARCH_HOST_MEMORY_BYTES", str(80_000))  # half is 40 KB
    assert isinstance(planned_loader(cfg, split, CPU, MEAN, STD, train=True), StreamLoader)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "training split: its images take 43.8 KB decoded" in lines[0]
    assert "80.0 KB of memory available; streaming its batches" in lines[0]
    # In-memory images are shared by the CPU device loader, never copied: no switch.
    small = ArrayDataset(np.asarray(split.images), split.labels)
    assert isinstance(planned_loader(cfg, small, CPU, MEAN, STD, train=True), DeviceLoader)
    stream_cfg = tiny_config(loader={"kind": "stream"})
    assert isinstance(planned_loader(stream_cfg, small, CPU, MEAN, STD, train=False), StreamLoader)


def test_a_streamed_training_run_equals_a_device_resident_one(
    folder: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tiny_config: Callable[..., TrainConfig],
) -> None:
    cfg = tiny_config(epochs=2, batch_size=16, dataset=folder)
    resident = train(cfg, tmp_path / "resident", report=lambda m, c: None)
    monkeypatch.setenv("HPSEARCH_HOST_MEMORY_BYTES", "1000")
    streamed = train(cfg, tmp_path / "streamed", report=lambda m, c: None)
    err = capsys.readouterr().err
    assert "training split:" in err and "evaluation split:" in err
    learned = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")  # timings differ
    assert [[h[k] for k in learned] for h in streamed.history] == [
        [h[k] for k in learned] for h in resident.history
    ]
