"""Datasets as uint8 NHWC arrays: CIFAR-10, any image-folder tree, or synthetic data.

An image folder is decoded once, block by block in constant memory, into a uint8 .npy cache
that is read memory-mapped (CIFAR-10 is 184 MB as uint8); then split: a seeded, stratified
validation split is carved from the training set (subsets copy out only their images); the
test split is only returned for the final evaluation and never used for model selection.
Sizes are checked before decoding and before loading (`trainable.datasize`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainable.config import DatasetConfig
from trainable.datasize import decoded_bytes, require_disk, require_heap
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
_CACHE_VERSION = 1


@dataclass(frozen=True)
class ArrayDataset:
    images: np.ndarray  # uint8, (N, H, W, 3)
    labels: np.ndarray  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> ArrayDataset:
        return ArrayDataset(self.images[index], self.labels[index])


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
            np.concatenate([self.train.images, self.val.images]),
            np.concatenate([self.train.labels, self.val.labels]),
        )
        empty = self.val.take(np.arange(0))
        return Splits(train, empty, self.test, self.classes, self.provenance)


def cache_dir() -> Path:
    """Decoded-dataset cache; outside the repo and outside (read-only) data folders."""
    return Path(os.environ.get("HPSEARCH_CACHE", Path.home() / ".cache" / "hpsearch")) / "datasets"


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
    require_heap(
        len(train_idx) + len(val_idx) + len(test_idx),
        int(train.images.shape[1]),
        "set dataset.train_subset (and val_subset, test_subset) or a smaller dataset.image_size",
    )
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
        raise _cifar_missing(root, "dataset.download is false")
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
    """Decode `root/{train,test}/<class>/*` once, resized to `image_size`, cached as uint8 .npy.

    The cache key hashes every file's relative path, size and modification time (the quick
    check `make` and `rsync` use) plus the size, so an edited folder is decoded again.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(
                f"image folder {root} has no '{split}/' subfolder; expected "
                f"{root}/train/<class>/*.jpg and {root}/test/<class>/*.jpg (set --data-root)"
            )
    try:
        classes, class_to_idx = find_classes(str(root / "train"))
        samples = {
            split: make_dataset(str(root / split), class_to_idx, extensions=IMG_EXTENSIONS)
            for split in ("train", "test")
        }
    except (FileNotFoundError, OSError) as err:
        raise DataError(f"cannot read image folder {root}: {err}") from err
    key = _folder_key(root, samples, image_size)
    where = cache_dir() / key
    if not (where / "meta.json").is_file():
        require_disk(sum(len(items) for items in samples.values()), image_size, cache_dir())
        _decode_to_cache(samples, tuple(classes), image_size, where)
    # Memory-mapped: pages are read only when used and sit in the page cache, not the heap;
    # the splits below copy out the images they select (a subset reads only its own).
    arrays = {
        name: np.load(where / f"{name}.npy", mmap_mode="r")
        for name in ("train_x", "train_y", "test_x", "test_y")
    }
    provenance = f"image folder {root.resolve()}"
    note = root / "PROVENANCE.md"
    if note.is_file():
        first = next((ln for ln in note.read_text(errors="replace").splitlines() if ln.strip()), "")
        provenance += f" ({first.lstrip('# ').strip()})"
    return (
        ArrayDataset(arrays["train_x"], arrays["train_y"]),
        ArrayDataset(arrays["test_x"], arrays["test_y"]),
        tuple(classes),
        provenance,
    )


def _folder_key(root: Path, samples: dict[str, list[tuple[str, int]]], image_size: int) -> str:
    h = hashlib.sha256(f"v{_CACHE_VERSION}:{image_size}".encode())
    for split, items in samples.items():
        for path, label in items:
            st = os.stat(path)
            h.update(
                f"{split}|{os.path.relpath(path, root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode()
            )
    return h.hexdigest()[:24]


def _decode_one(args: tuple[str, int]) -> np.ndarray:
    from PIL import Image

    path, size = args
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


# Images decoded per step of the cache writer: about this many bytes in flight, whatever the
# set's size, so decoding runs in constant memory.
_DECODE_BLOCK_BYTES = 64 * 1024 * 1024


def _decode_to_cache(
    samples: dict[str, list[tuple[str, int]]],
    classes: tuple[str, ...],
    image_size: int,
    where: Path,
) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=where.parent, prefix=".tmp-"))
    try:
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for split, items in samples.items():
                if not items:
                    raise DataError(f"no images found in the '{split}' split of the image folder")
                _decode_split(pool, split, [path for path, _ in items], image_size, tmp)
                np.save(tmp / f"{split}_y.npy", np.array([lbl for _, lbl in items], dtype=np.int64))
        (tmp / "meta.json").write_text(json.dumps({"classes": classes, "image_size": image_size}))
        # Atomic publish: a concurrent or interrupted run never sees a half-written cache.
        try:
            tmp.rename(where)
        except OSError:
            if not (where / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _decode_split(
    pool: ProcessPoolExecutor, split: str, paths: list[str], size: int, tmp: Path
) -> None:
    """Decode into a memory-mapped .npy block by block: only one block is ever in memory."""
    out = np.lib.format.open_memmap(
        tmp / f"{split}_x.npy", mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3)
    )
    block = max(1, _DECODE_BLOCK_BYTES // decoded_bytes(1, size))
    chunk = max(1, block // (4 * (os.cpu_count() or 1)))
    step = max(block, len(paths) // 10)  # progress about every 10%
    shown = 0
    for start in range(0, len(paths), block):
        jobs = [(path, size) for path in paths[start : start + block]]
        try:
            for i, image in enumerate(pool.map(_decode_one, jobs, chunksize=chunk)):
                out[start + i] = image
        except OSError as err:
            raise DataError(f"cannot decode an image in the '{split}' split: {err}") from err
        done = min(start + block, len(paths))
        if done - shown >= step or done == len(paths):
            print(f"decoding {split}: {done:,}/{len(paths):,} images", file=sys.stderr, flush=True)
            shown = done
    out.flush()
    del out


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
