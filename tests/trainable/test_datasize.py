"""Sizes before work: each outcome of the pre-flight (fits, refused, fits once subset) and a
decode that stays in constant memory whatever the folder's size."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.trainable.test_data import make_tree
from trainable import data as data_mod
from trainable import datasize
from trainable.config import DatasetConfig
from trainable.data import load_splits
from trainable.errors import DataError

REPO = Path(__file__).resolve().parents[2]
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


def test_a_set_that_fits_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_HOST_MEMORY_BYTES", str(3 * SELECTED))
    assert len(load_splits(SYNTH).train) == 900


def test_a_set_too_big_for_memory_is_refused_with_sizes_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HPSEARCH_HOST_MEMORY_BYTES", str(SELECTED))  # needs 2x: half is kept
    with pytest.raises(DataError) as info:
        load_splits(SYNTH)
    msg = str(info.value)
    for needle in ("(1,400 at 32x32)", "4.3 MB decoded", "50% of the 4.3 MB", "train_subset"):
        assert needle in msg, (needle, msg)


def test_the_same_set_fits_once_subset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_HOST_MEMORY_BYTES", str(SELECTED))
    small = SYNTH.model_copy(update={"train_subset": 200, "val_subset": 50, "test_subset": 100})
    splits = load_splits(small)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (200, 50, 100)


def test_a_cache_bigger_than_the_free_disk_is_refused_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"needs .* of cache, but .* free; .*HPSEARCH_CACHE"):
        datasize.require_disk(10**9, 512, tmp_path)  # 786 TB against this disk's free space
    datasize.require_disk(10, 32, tmp_path)  # 30 KB fits


def test_object_store_and_device_limits() -> None:
    datasize.require_object_store(700, 1000.0, 10)
    with pytest.raises(DataError, match=r"does not fit 80% of Ray's object store .*train_subset"):
        datasize.require_object_store(900, 1000.0, 10)
    datasize.require_device(400, 1000, "cuda:0")
    with pytest.raises(DataError, match=r"more than half of its 1.0 KB free; use loader.kind"):
        datasize.require_device(600, 1000, "cuda:0")


def test_decode_runs_block_by_block_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """120 images of 64x64 (1.5 MB decoded) with 12-image blocks: the decoder never holds
    more than a few blocks, and the cache holds exactly what decoding each file gives."""
    root = tmp_path / "tree"
    make_tree(root, ["a", "b", "c", "d"], per_class=30, size=(64, 64))
    monkeypatch.setattr(data_mod, "_DECODE_BLOCK_BYTES", 12 * 64 * 64 * 3)
    total = datasize.decoded_bytes(120, 64)
    import torchvision.datasets.folder  # noqa: F401  (imported first: its import is not decoding)

    tracemalloc.start()
    try:
        train, _, _, _ = data_mod.load_image_folder(root, 64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < total / 2, (peak, total)
    assert isinstance(train.images, np.memmap) and train.images.shape == (120, 64, 64, 3)
    first = sorted((root / "train" / "a").iterdir())[0]
    with Image.open(first) as img:
        assert np.array_equal(train.images[0], np.asarray(img.convert("RGB")))
    assert "decoding train: 120/120 images" in capsys.readouterr().err


def test_the_cli_refuses_in_one_line_before_training(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainable",
            "train",
            "--out",
            str(out),
            "--set",
            "dataset.name=synthetic",
            "--set",
            "dataset.synthetic_train_size=1000",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HPSEARCH_HOST_MEMORY_BYTES": "1000000"},
    )
    assert proc.returncode == DataError.exit_code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "of memory available" in lines[0], proc.stderr
    assert not out.exists()  # nothing written
