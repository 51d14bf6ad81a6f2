from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainable.config import DatasetConfig
from trainable.data import folder as folder_mod
from trainable.data.datasets import CIFAR10_CLASSES, load_splits, stratified_split
from trainable.errors import DataError


def make_tree(
    root: Path, classes: list[str], per_class: int = 6, size: tuple[int, int] = (40, 24)
) -> None:
    """A real image-folder tree of PNGs whose colour encodes the class."""
    for split in ("train", "test"):
        for i, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for k in range(per_class):
                img = Image.new("RGB", size, color=(40 * i, 10 * k, 200))
                img.save(folder / f"{k}.png")


def test_stratified_split_keeps_class_proportions() -> None:
    labels = np.repeat(np.arange(5), [100, 200, 50, 10, 40])
    val, rest = stratified_split(labels, 0.1, np.random.default_rng(0))
    assert len(np.intersect1d(val, rest)) == 0
    assert len(val) + len(rest) == len(labels)
    assert np.bincount(labels[val]).tolist() == [10, 20, 5, 1, 4]


def test_split_is_seeded_and_subsets_are_stratified() -> None:
    cfg = DatasetConfig(
        name="synthetic", num_classes=4, synthetic_train_size=400, train_subset=100, val_subset=40
    )
    a, b = load_splits(cfg), load_splits(cfg)
    assert np.array_equal(a.val.labels, b.val.labels) and np.array_equal(
        a.train.images, b.train.images
    )
    assert len(a.train) == 100 and len(a.val) == 40
    assert np.bincount(a.train.labels).tolist() == [25] * 4
    other = load_splits(cfg.model_copy(update={"split_seed": 1}))
    assert not np.array_equal(a.val.images, other.val.images)


def test_synthetic_shapes() -> None:
    s = load_splits(
        DatasetConfig(name="synthetic", num_classes=3, image_size=20, synthetic_train_size=90)
    )
    assert s.train.images.dtype == np.uint8 and s.train.images.shape[1:] == (20, 20, 3)
    assert s.classes == ("class_0", "class_1", "class_2")
    assert len(s.train) + len(s.val) == 90


def test_image_folder_decodes_resizes_and_reuses_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "flowers"
    make_tree(root, ["daisy", "rose", "tulip"])
    cfg = DatasetConfig(name="imagefolder", root=str(root), image_size=16, val_fraction=0.5)
    first = load_splits(cfg)
    assert first.classes == ("daisy", "rose", "tulip")
    assert first.train.images.shape[1:] == (16, 16, 3)
    assert len(first.test) == 18 and np.bincount(first.test.labels).tolist() == [6, 6, 6]
    # colour encodes the class: red channel 40*i survives decoding and resizing
    assert sorted({int(x) for x in first.test.images[:, 8, 8, 0]}) == [0, 40, 80]

    def no_decode(*_args: object) -> None:
        raise AssertionError("cache miss: the folder was decoded again")

    monkeypatch.setattr(folder_mod, "_decode_to_cache", no_decode)
    second = load_splits(cfg)
    assert np.array_equal(first.train.images, second.train.images)

    # Changing a file changes the cache key, so the folder is decoded again.
    changed = root / "train" / "rose" / "0.png"
    Image.new("RGB", (40, 24), color=(1, 2, 3)).save(changed)
    os.utime(changed, ns=(1, 1))
    with pytest.raises(AssertionError, match="cache miss"):
        load_splits(cfg)


def test_a_changed_folder_replaces_its_earlier_cache_and_no_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, other = tmp_path / "flowers", tmp_path / "birds"
    make_tree(root, ["daisy", "rose"])
    make_tree(other, ["owl", "wren"])
    first = folder_mod.decode_folder(root, 16)
    smaller = folder_mod.decode_folder(root, 8)  # the same folder at another size: kept
    neighbour = folder_mod.decode_folder(other, 16)
    os.utime(root / "train" / "rose" / "0.png", ns=(1, 1))  # copied again: a new mtime
    capsys.readouterr()
    second = folder_mod.decode_folder(root, 16)
    assert second.key != first.key and second.ready()
    assert not first.directory.exists() and not first.directory.with_suffix(".lock").exists()
    assert smaller.ready() and neighbour.ready()
    assert f"removed 1 earlier decode cache(s) of {root}" in capsys.readouterr().err


def test_cifar10_reads_an_image_folder_with_its_classes(tmp_path: Path) -> None:
    make_tree(tmp_path / "c10", list(CIFAR10_CLASSES), per_class=2, size=(32, 32))
    s = load_splits(DatasetConfig(name="cifar10", root=str(tmp_path / "c10"), val_fraction=0.5))
    assert s.classes == CIFAR10_CLASSES and len(s.test) == 20


def test_cifar10_folder_with_other_classes_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path / "other", ["a", "b"], per_class=2)
    with pytest.raises(DataError, match=r"not CIFAR-10.s; use dataset\.name: imagefolder"):
        load_splits(DatasetConfig(name="cifar10", root=str(tmp_path / "other")))


def test_missing_data_errors_say_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"CIFAR-10 not found under .*--data-root"):
        load_splits(DatasetConfig(name="cifar10", root=str(tmp_path / "nothing"), download=False))
    with pytest.raises(DataError, match=r"does not exist; set --data-root"):
        load_splits(DatasetConfig(name="imagefolder", root=str(tmp_path / "nothing")))


def test_corrupt_image_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    make_tree(root, ["a", "b"], per_class=2)
    (root / "train" / "a" / "0.png").write_bytes(b"not a png")
    # 1 of 4 training files: past the 5% a folder may have broken, so refused in one line.
    with pytest.raises(
        DataError,
        match=r"1 of the 4 files in the 'train' split .* cannot be decoded as images \(e\.g\. train/a/0\.png\), more than 5%",
    ):
        load_splits(DatasetConfig(name="imagefolder", root=str(root)))


def test_without_validation_moves_every_validation_image_into_training() -> None:
    from trainable.config import DatasetConfig
    from trainable.data.datasets import load_splits

    splits = load_splits(
        DatasetConfig(name="synthetic", synthetic_train_size=200, val_fraction=0.25)
    )
    refit = splits.without_validation()
    assert len(refit.val) == 0 and len(refit.train) == len(splits.train) + len(splits.val)
    assert (refit.train.images[len(splits.train) :] == splits.val.images).all()
    assert refit.test is splits.test
