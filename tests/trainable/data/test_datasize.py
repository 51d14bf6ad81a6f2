"""Sizes before work: each outcome of the pre-flight (fits; switched to streaming, in
test_stream; refused) and a decode that stays in constant memory whatever the folder's size."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.trainable.data.test_data import make_tree
from trainable.config import DatasetConfig
from trainable.data import datasets as data_mod
from trainable.data import datasize
from trainable.data import folder as folder_mod
from trainable.data.mapped import MappedImages
from trainable.errors import DataError

REPO = Path(__file__).resolve().parents[3]
# 1,000 synthetic 32x32 training images (900 train + 100 validation) and 400 test: 1,400.
SYNTH = DatasetConfig(name="synthetic", synthetic_train_size=1000, synthetic_test_size=400)
SELECTED = datasize.decoded_bytes(1000 + 400, 32)


def test_decoded_bytes_and_their_human_form() -> None:
    assert datasize.decoded_bytes(70_000, 224) == 70_000 * 224 * 224 * 3  # ~10.5 GB
    assert datasize.human(10_536_960_000) == "10.5 GB" and datasize.human(512) == "512 B"


def test_available_memory_is_read_from_the_machine_unless_overridden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HPSEARCH_HOST_MEMORY_BYTES", raising=False)
    assert 0 < datasize.available_host_bytes() < 2**50
    monkeypatch.setenv("HPSEARCH_HOST_MEMORY_BYTES", "12345")
    assert datasize.available_host_bytes() == 12345


def test_a_copy_into_memory_fits_in_half_of_what_is_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HPSEARCH_HOST_MEMORY_BYTES", str(2 * SELECTED))
    assert datasize.heap_shortfall(SELECTED) is None
    monkeypatch.setenv("HPSEARCH_HOST_MEMORY_BYTES", str(SELECTED))
    why = datasize.heap_shortfall(SELECTED)
    assert why == "its images take 4.3 MB decoded, more than 50% of the 4.3 MB of memory available"


def test_a_cache_bigger_than_the_free_disk_is_refused_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"needs .* of cache, but .* free; .*HPSEARCH_CACHE"):
        datasize.require_disk(10**9, 512, tmp_path)  # 786 TB against this disk's free space
    datasize.require_disk(10, 32, tmp_path)  # 30 KB fits


def test_object_store_and_device_limits() -> None:
    datasize.require_object_store(700, 1000.0, 10)
    with pytest.raises(DataError, match=r"does not fit 80% of Ray's object store .*train_subset"):
        datasize.require_object_store(900, 1000.0, 10)
    assert datasize.device_shortfall(400, 1000, "cuda:0") is None
    why = datasize.device_shortfall(600, 1000, "cuda:0")
    assert why == "its images take 600 B, more than half of the 1.0 KB free on cuda:0"


def test_decode_runs_block_by_block_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """120 images of 64x64 (1.5 MB decoded) with 12-image blocks: the decoder never holds
    more than a few blocks, and the cache holds exactly what decoding each file gives."""
    root = tmp_path / "tree"
    make_tree(root, ["a", "b", "c", "d"], per_class=30, size=(64, 64))
    monkeypatch.setattr(folder_mod, "_DECODE_BLOCK_BYTES", 12 * 64 * 64 * 3)
    total = datasize.decoded_bytes(120, 64)
    import torchvision.datasets.folder  # noqa: F401  (imported first: its import is not decoding)

    tracemalloc.start()
    try:
        train, _, _, _ = data_mod.load_image_folder(root, 64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < total / 2, (peak, total)
    assert isinstance(train.images, MappedImages) and train.images.shape == (120, 64, 64, 3)
    first = sorted((root / "train" / "a").iterdir())[0]
    with Image.open(first) as img:
        assert np.array_equal(train.images[0], np.asarray(img.convert("RGB")))
    assert "decoding train: 120/120 images" in capsys.readouterr().err


def test_a_cache_too_big_for_its_disk_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, tmpfs: Callable[[str], Path]
) -> None:
    """A real small disk (1 MB tmpfs) for the cache; 24 images at 256x256 need 4.7 MB."""
    cache = tmpfs("1m")
    make_tree(tmp_path / "tree", ["a", "b"], per_class=6, size=(16, 16))
    out = tmp_path / "run"
    proc = run_cli(
        "trainable",
        *("train", "--out", out, "--set", "dataset.name=imagefolder"),
        *("--set", f"dataset.root={tmp_path / 'tree'}", "--set", "dataset.image_size=256"),
        env={**os.environ, "HPSEARCH_CACHE": str(cache)},
    )
    assert proc.returncode == DataError.exit_code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "decoding 24 images at 256x256 needs 4.7 MB of cache" in lines[0]
    assert "HPSEARCH_CACHE" in lines[0]
    assert not out.exists() and list((cache / "datasets").iterdir()) == []
