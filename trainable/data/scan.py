"""Which files of an image folder are images of which class and split.

Two layouts are read, the first one that matches:

    root/train/<class>/*  and, optionally, root/test/<class>/*
    root/<class>/*        (no train/: every image is a training image)

Without a `test/` folder, a stratified test split is carved from the training images:
`TEST_FRACTION` of each class (at least one image of a class with two or more), chosen by a
fixed seed from the files' sorted relative paths. The carve is a pure function of the file
list, so every run over the same folder holds out the same images; adding or removing files
changes it (and the decode cache's key, so the cache is made again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainable.errors import DataError

SPLITS = ("train", "test")
TEST_FRACTION = 0.2
CARVE_SEED = 0
Samples = dict[str, list[tuple[str, int]]]


@dataclass(frozen=True)
class FolderScan:
    samples: Samples  # split -> [(path, class index)], sorted by path within a class
    classes: tuple[str, ...]
    train_dir: Path
    test_carved: bool  # no test/ folder: the test split was carved from train_dir

    def note(self) -> str:
        """A few words on where the test split came from, for provenance lines."""
        if not self.test_carved:
            return ""
        return (
            f"test split carved from {self.train_dir.name}/: {TEST_FRACTION:.0%} of each "
            f"class, seed {CARVE_SEED}"
        )


def scan_folder(root: Path) -> FolderScan:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; set --data-root to a folder")
    train_dir = root / "train" if (root / "train").is_dir() else root
    test_dir = root / "test" if train_dir != root and (root / "test").is_dir() else None
    try:
        classes, class_to_idx = find_classes(str(train_dir))
    except FileNotFoundError:
        raise DataError(
            f"image folder {root} has no class folders; expected {root}/train/<class>/*.jpg "
            f"(and optionally {root}/test/<class>/*.jpg) or {root}/<class>/*.jpg"
        ) from None
    except OSError as err:
        raise DataError(f"cannot read image folder {root}: {err}") from err
    if len(classes) < 2:
        raise DataError(
            f"image folder {train_dir} has {len(classes)} class folder(s) ({', '.join(classes)}); "
            "a classifier needs at least 2: put each class's images in a folder of its own"
        )
    try:
        train = make_dataset(str(train_dir), class_to_idx, extensions=IMG_EXTENSIONS)
        test = (
            make_dataset(str(test_dir), class_to_idx, extensions=IMG_EXTENSIONS)
            if test_dir is not None
            else None
        )
    except (FileNotFoundError, OSError) as err:
        raise DataError(f"cannot read image folder {root}: {err}") from err
    if test is None:
        train, test = carve_test(train)
    return FolderScan({"train": train, "test": test}, tuple(classes), train_dir, test_dir is None)


def carve_test(
    items: list[tuple[str, int]],
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(train, test): TEST_FRACTION of each class's images held out, seeded."""
    rng = np.random.default_rng(CARVE_SEED)
    by_class: dict[int, list[tuple[str, int]]] = {}
    for item in sorted(items):
        by_class.setdefault(item[1], []).append(item)
    held: set[tuple[str, int]] = set()
    for label in sorted(by_class):
        group = by_class[label]
        k = max(1, round(len(group) * TEST_FRACTION)) if len(group) >= 2 else 0
        held.update(group[i] for i in rng.permutation(len(group))[:k])
    return [i for i in items if i not in held], [i for i in items if i in held]
