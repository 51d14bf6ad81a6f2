"""Datasets as uint8 NHWC arrays: CIFAR-10, any image-folder tree, or synthetic data.

An image folder is decoded once, in constant memory, into a uint8 cache on disk
(`trainable.data.folder`; CIFAR-10 is 184 MB as uint8) and its splits stay there: they are row
selections of the memory-mapped cache (`trainable.data.mapped`), so a set larger than memory loads
and a subset reads only its own images. Splits: a seeded, stratified validation split is carved
from the training set; the test split is only returned for the final evaluation and never used
for model selection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainable.config import DatasetConfig
from trainable.data.folder import decode_folder
from trainable.data.mapped import CacheRef, MappedImages, concat
from trainable.data.scan import SPLITS
from trainable.errors import DataError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


@dataclass(frozen=True)
class ArrayDataset:
    images: np.ndarray | MappedImages  # uint8, (N, H, W, 3): in memory, or rows of a cache
    labels: np.ndarray  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> ArrayDataset:
        """The rows `index`: copied from memory, or still on disk for a mapped cache."""
        return ArrayDataset(self.images.take(index, axis=0), self.labels[index])


@dataclass(frozen=True)
class Splits:
    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset
    classes: tuple[str, ...]
    provenance: str  # where the data came from, for manifests and reports

    def without_validation(self) -> Splits:
        """Validation images moved into training (a refit once the search is done)."""
        train = ArrayDataset(
            concat(self.train.images, self.val.images),
            np.concatenate([self.train.labels, self.val.labels]),
        )
        empty = self.val.take(np.arange(0))
        return Splits(train, empty, self.test, self.classes, self.provenance)


def load_splits(cfg: DatasetConfig) -> Splits:
    train, test, classes, provenance = _load_raw(cfg)
    rng = np.random.default_rng(cfg.split_seed)
    val_idx, train_idx = stratified_split(train.labels, cfg.val_fraction, rng)
    if len(train_idx) == 0 or (len(val_idx) == 0 and cfg.val_fraction > 0):
        raise DataError(
            f"dataset.val_fraction={cfg.val_fraction} leaves an empty split of "
            f"{len(train)} training images; use a value that keeps both splits non-empty"
        )
    train_idx = _subset(train_idx, train.labels, cfg.train_subset, rng)
    val_idx = _subset(val_idx, train.labels, cfg.val_subset, rng)
    test_idx = _subset(np.arange(len(test)), test.labels, cfg.test_subset, rng)
    return Splits(
        train.take(train_idx), train.take(val_idx), test.take(test_idx), classes, provenance
    )


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (taken, rest): `fraction` of every class goes to `taken` (rounded, seeded)."""
    taken, rest = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        k = round(len(idx) * fraction)
        taken.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(taken)), np.sort(np.concatenate(rest))


def _subset(
    idx: np.ndarray, labels: np.ndarray, size: int | None, rng: np.random.Generator
) -> np.ndarray:
    if size is None or size >= len(idx):
        return idx
    picked, _ = stratified_split(labels[idx], size / len(idx), rng)
    return idx[picked]


def _load_raw(cfg: DatasetConfig) -> tuple[ArrayDataset, ArrayDataset, tuple[str, ...], str]:
    if cfg.name == "synthetic":
        return make_synthetic(cfg)
    root = Path(cfg.root).expanduser()
    if cfg.name == "imagefolder":
        return load_image_folder(root, cfg.image_size)
    return _load_cifar10(root, cfg.download)


def _load_cifar10(
    root: Path, download: bool
) -> tuple[ArrayDataset, ArrayDataset, tuple[str, ...], str]:
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, test, classes, provenance = load_image_folder(root, 32)
        if classes != CIFAR10_CLASSES:
            raise DataError(
                f"{root} is an image folder but its classes {list(classes)} are not CIFAR-10's; "
                "use dataset.name: imagefolder for other datasets"
            )
        return train, test, classes, provenance
    import torchvision

    if not (root / "cifar-10-batches-py").is_dir() and not download:
        raise _cifar_missing(
            root, "dataset.download is false; --set dataset.download=true fetches it"
        )
    try:
        parts = [
            torchvision.datasets.CIFAR10(str(root), train=is_train, download=download)
            for is_train in (True, False)
        ]
    except Exception as err:  # network errors come in many types; all mean the same to the user
        raise _cifar_missing(root, f"download failed: {type(err).__name__}") from err
    train, test = (ArrayDataset(p.data, np.asarray(p.targets, dtype=np.int64)) for p in parts)
    return train, test, CIFAR10_CLASSES, f"CIFAR-10 (official, torchvision) at {root.resolve()}"


def _cifar_missing(root: Path, why: str) -> DataError:
    return DataError(
        f"CIFAR-10 not found under {root} ({why}); put the official cifar-10-batches-py folder "
        "there, or an image-folder tree train/<class>/*, test/<class>/*, and pass --data-root PATH"
    )


def load_image_folder(
    root: Path, image_size: int
) -> tuple[ArrayDataset, ArrayDataset, tuple[str, ...], str]:
    """`root/{train,test}/<class>/*` at `image_size`: decoded once to the cache on disk, then
    read from it memory-mapped (the images stay on disk; `trainable.data.mapped`)."""
    folder = decode_folder(root, image_size)
    skipped = folder.skipped()
    parts = []
    for split in SPLITS:
        labels = np.load(folder.path(f"{split}_y"))
        rows = np.setdiff1d(np.arange(len(labels)), skipped.get(split, []))
        ref = CacheRef(str(root), image_size, folder.key, f"{split}_x")
        parts.append(ArrayDataset(MappedImages(ref, rows), labels[rows]))
    return parts[0], parts[1], folder.classes, folder.provenance()


def make_synthetic(cfg: DatasetConfig) -> tuple[ArrayDataset, ArrayDataset, tuple[str, ...], str]:
    """A learnable task: each class is a smooth random colour template, plus noise and jitter."""
    rng = np.random.default_rng(1234)
    size, n_cls = cfg.image_size, cfg.num_classes
    coarse = rng.normal(size=(n_cls, 3, 4, 4)).astype(np.float32)
    templates = coarse.repeat(size // 4 + 1, axis=2).repeat(size // 4 + 1, axis=3)[
        :, :, :size, :size
    ]

    def sample(n: int, seed: int) -> ArrayDataset:
        r = np.random.default_rng(seed)
        labels = np.arange(n, dtype=np.int64) % n_cls
        r.shuffle(labels)
        noise = r.normal(size=(n, 3, size, size)).astype(np.float32)
        x = 128 + 45 * templates[labels] + 50 * noise
        images = np.clip(x, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return ArrayDataset(np.ascontiguousarray(images), labels)

    classes = tuple(f"class_{i}" for i in range(n_cls))
    train = sample(cfg.synthetic_train_size, 1)
    test = sample(cfg.synthetic_test_size, 2)
    return train, test, classes, f"synthetic ({n_cls} classes, {size}px)"
