"""What an image folder holds, read before anything is decoded or trained: classes, images
per class and split, the size and colour-mode distribution (from a sample of file headers),
files that cannot be opened, and how long decoding one image takes here.

`inspect_folder` opens only headers (Pillow reads them lazily) for a stratified sample of at
most `SAMPLE` files, and fully decodes `DECODE_SAMPLE` of them to time decoding: seconds even
for a folder of a million images. The planner (`tuner.planning`) sizes a run from it.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainable.data.scan import FolderScan, scan_folder

SAMPLE = 1000  # headers read for the size and mode distribution
DECODE_SAMPLE = 50  # images decoded to time decoding
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


@dataclass(frozen=True)
class FolderSummary:
    root: Path
    classes: tuple[str, ...]
    train_counts: tuple[int, ...]  # per class, in class order
    test_counts: tuple[int, ...]
    test_carved: bool
    split_note: str
    sizes: tuple[tuple[int, int], ...]  # (width, height) of the sampled images
    modes: dict[str, int]  # Pillow mode -> sampled images
    unreadable: tuple[str, ...] = ()  # sampled files whose header did not open
    decode_s_per_image: float = 0.0  # one core, median of the timed sample
    sampled: int = field(default=0)

    @property
    def num_train(self) -> int:
        return sum(self.train_counts)

    @property
    def num_test(self) -> int:
        return sum(self.test_counts)

    @property
    def grayscale(self) -> bool:
        """Most sampled images carry one channel (decoded to 3 equal ones for training)."""
        gray = sum(n for mode, n in self.modes.items() if mode in GRAY_MODES)
        return gray * 2 > sum(self.modes.values())

    @property
    def imbalance(self) -> float:
        """Largest class over smallest, in the training split."""
        return max(self.train_counts) / max(1, min(self.train_counts))

    def short_side(self) -> int:
        """The median of the sampled images' shorter sides."""
        return int(statistics.median(min(w, h) for w, h in self.sizes)) if self.sizes else 32

    def lines(self) -> list[str]:
        """The summary in a few lines, for a terminal or a YAML comment."""
        widths = [w for w, _ in self.sizes] or [0]
        heights = [h for _, h in self.sizes] or [0]
        modes = ", ".join(f"{m} {n}" for m, n in sorted(self.modes.items(), key=lambda x: -x[1]))
        out = [
            f"{len(self.classes)} classes, {self.num_train:,} training and {self.num_test:,} "
            f"test images" + (f" ({self.split_note})" if self.split_note else ""),
            f"images per class (train): min {min(self.train_counts):,}, max "
            f"{max(self.train_counts):,} (imbalance {self.imbalance:.1f}:1)",
            f"sizes of {self.sampled:,} sampled images: width {min(widths)}-{max(widths)}, "
            f"height {min(heights)}-{max(heights)}, median shorter side {self.short_side()} px",
            f"colour modes: {modes or 'none read'}"
            + (" (grayscale: trained as 3 equal channels)" if self.grayscale else ""),
        ]
        if self.unreadable:
            out.append(
                f"{len(self.unreadable)} of the sampled files could not be opened, e.g. "
                f"{self.unreadable[0]}"
            )
        return out


def inspect_folder(root: Path) -> FolderSummary:
    scan = scan_folder(root)
    n = len(scan.classes)
    train = np.bincount([label for _, label in scan.samples["train"]], minlength=n)
    test = np.bincount([label for _, label in scan.samples["test"]], minlength=n)
    paths = _sample_paths(scan, SAMPLE)
    sizes, modes, unreadable = _headers(paths)
    return FolderSummary(
        root=root,
        classes=scan.classes,
        train_counts=tuple(int(c) for c in train),
        test_counts=tuple(int(c) for c in test),
        test_carved=scan.test_carved,
        split_note=scan.note(),
        sizes=tuple(sizes),
        modes=dict(modes),
        unreadable=tuple(unreadable),
        decode_s_per_image=_decode_time([p for p in paths if p not in unreadable]),
        sampled=len(paths),
    )


def _sample_paths(scan: FolderScan, limit: int) -> list[str]:
    """Up to `limit` training files, spread over the classes in proportion, seeded."""
    items = scan.samples["train"]
    if len(items) <= limit:
        return [p for p, _ in items]
    picked = np.random.default_rng(0).choice(len(items), size=limit, replace=False)
    return [items[i][0] for i in sorted(picked)]


def _headers(paths: list[str]) -> tuple[list[tuple[int, int]], Counter[str], list[str]]:
    from PIL import Image

    sizes: list[tuple[int, int]] = []
    modes: Counter[str] = Counter()
    unreadable: list[str] = []
    for path in paths:
        try:
            with Image.open(path) as img:
                sizes.append(img.size)
                modes[img.mode] += 1
        except (OSError, ValueError, Image.DecompressionBombError):
            unreadable.append(path)
    return sizes, modes, unreadable


def _decode_time(paths: list[str]) -> float:
    from PIL import Image

    times = []
    for path in paths[:DECODE_SAMPLE]:
        t0 = time.perf_counter()
        try:
            with Image.open(path) as img:
                img.convert("RGB").load()
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        times.append(time.perf_counter() - t0)
    return statistics.median(times) if times else 0.0
