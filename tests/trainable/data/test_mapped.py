"""An image folder's splits stay in the memory-mapped decode cache: selections are row numbers,
they pickle as a reference, and a machine without the cache decodes the folder once."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.trainable.data.test_data import make_tree
from trainable.config import DatasetConfig
from trainable.data import folder as folder_mod
from trainable.data.datasets import load_splits
from trainable.data.mapped import MappedImages
from trainable.errors import DataError


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path / "cache-a"))
    root = tmp_path / "tree"
    make_tree(root, ["a", "b", "c"], per_class=10, size=(20, 20))
    return root


def _cfg(root: Path, **extra: object) -> DatasetConfig:
    return DatasetConfig(name="imagefolder", root=str(root), image_size=16, **extra)  # type: ignore[arg-type]


def mapped(images: object) -> MappedImages:
    assert isinstance(images, MappedImages), type(images)
    return images


def test_splits_are_rows_of_the_cache_and_read_only_their_images(tree: Path) -> None:
    full = load_splits(_cfg(tree, val_fraction=0.2))
    sub = mapped(load_splits(_cfg(tree, val_fraction=0.2, train_subset=6)).train.images)
    train, val = mapped(full.train.images), mapped(full.val.images)
    mapped(full.test.images)
    cache = np.load(folder_mod.cache_dir() / train.ref.key / "train_x.npy")
    assert np.array_equal(np.asarray(sub), cache[sub.rows])
    assert len(sub) == 6 and sub.shape == (6, 16, 16, 3)
    # Every image is in exactly one of train and validation.
    assert sorted(np.concatenate([train.rows, val.rows]).tolist()) == list(range(30))
    # Indexing reads rows (an int, a slice, an index array), then pixels.
    x = np.asarray(full.train.images)
    assert np.array_equal(full.train.images[3], x[3])
    assert np.array_equal(full.train.images[2:5, 8, 8, 0], x[2:5, 8, 8, 0])
    assert np.array_equal(full.train.images[np.array([4, 1])], x[[4, 1]])


def test_a_refit_joins_train_and_validation_without_a_copy(tree: Path) -> None:
    splits = load_splits(_cfg(tree, val_fraction=0.2))
    joined = mapped(splits.without_validation().train.images)
    assert len(joined) == 30
    expected = np.concatenate([np.asarray(splits.train.images), np.asarray(splits.val.images)])
    assert np.array_equal(np.asarray(joined), expected)


def test_a_selection_pickles_as_a_reference(tree: Path) -> None:
    images = load_splits(_cfg(tree)).train.images
    blob = pickle.dumps(images)
    assert len(blob) < 1000 < images.nbytes  # row numbers, not pixels
    back = pickle.loads(blob)
    assert np.array_equal(np.asarray(back), np.asarray(images))


def test_a_machine_without_the_cache_decodes_the_folder_on_first_use(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = mapped(load_splits(_cfg(tree)).test.images)
    blob = pickle.dumps(images)
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path / "cache-b"))  # another node's cache
    back = pickle.loads(blob)
    assert np.array_equal(np.asarray(back), np.asarray(images))
    assert (tmp_path / "cache-b" / "datasets" / images.ref.key / "meta.json").is_file()


def test_a_different_copy_of_the_folder_is_refused_in_one_line(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = load_splits(_cfg(tree)).train.images
    blob = pickle.dumps(images)
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path / "cache-c"))
    os.utime(tree / "train" / "a" / "0.png", ns=(1, 1))  # copied without its modification time
    with pytest.raises(DataError, match=r"differs from the one the search decoded.*rsync -a"):
        np.asarray(pickle.loads(blob))


def test_concurrent_first_uses_decode_the_folder_once(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = folder_mod._decode_to_cache
    calls = []

    def counted(*args: object) -> None:
        calls.append(1)
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(folder_mod, "_decode_to_cache", counted)
    keys: list[str] = []
    threads = [
        threading.Thread(target=lambda: keys.append(folder_mod.decode_folder(tree, 16).key))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(keys)) == 1 and len(keys) == 3
