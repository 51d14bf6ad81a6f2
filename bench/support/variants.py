"""Image folders that look like other people's data, derived from the CIFAR-10 JPEG copy:
grayscale at 28 px, upsampled to 96 px, 3 classes at 10:1 imbalance, 50 images per class,
and scikit-learn's bundled `digits` (8x8, when scikit-learn is installed). Each is written
once under the cache (`~/.cache/hpsearch/variants/<name>`), never into `../shared`.

    python -m bench.support.variants --data-root ../shared/datasets/cifar10-jpeg [NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

VARIANTS = ("gray28", "big96", "imbalanced3", "few50", "digits")


def variants_root() -> Path:
    base = Path(os.environ.get("HPSEARCH_CACHE", Path.home() / ".cache" / "hpsearch"))
    return base / "variants"


def make(name: str, source: Path, where: Path | None = None) -> Path:
    """The variant's folder, written once (a complete one is marked by `.done`)."""
    out = (where or variants_root()) / name
    if (out / ".done").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    builders: dict[str, Callable[[Path, Path], None]] = {
        "gray28": lambda s, o: _derive(s, o, per_class=(1000, 200), size=28, mode="L"),
        "big96": lambda s, o: _derive(s, o, per_class=(500, 100), size=96, mode="RGB"),
        "imbalanced3": _imbalanced,
        "few50": lambda s, o: _derive(s, o, per_class=(50, 100), size=32, mode="RGB"),
        "digits": lambda _s, o: _digits(o),
    }
    builders[name](source, out)
    (out / ".done").touch()
    return out


def _derive(
    source: Path,
    out: Path,
    per_class: tuple[int, int],
    size: int,
    mode: str,
    classes: Sequence[str] | None = None,
    counts: dict[str, int] | None = None,
) -> None:
    from PIL import Image

    names = classes or sorted(p.name for p in (source / "train").iterdir() if p.is_dir())
    for split, n in zip(("train", "test"), per_class, strict=True):
        for cls in names:
            take = (counts or {}).get(cls, n) if split == "train" else n
            files = sorted((source / split / cls).glob("*.jpg"))[:take]
            folder = out / split / cls
            folder.mkdir(parents=True)
            for f in files:
                with Image.open(f) as src:
                    img = src.convert(mode)
                if img.size != (size, size):
                    img = img.resize((size, size), Image.Resampling.BICUBIC)
                img.save(folder / f"{f.stem}.png")


def _imbalanced(source: Path, out: Path) -> None:
    classes = ["airplane", "cat", "truck"]
    counts = {"airplane": 2000, "cat": 600, "truck": 200}  # 10:1 largest to smallest
    _derive(source, out, (0, 300), 32, "RGB", classes, counts)


def _digits(out: Path) -> None:
    """scikit-learn's 1,797 8x8 digits (0-16 grey levels) as PNGs, one folder per class and no
    test/ folder: the planner carves the test split."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(image * 16, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i:04d}.png")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.support.variants", description=__doc__)
    # Checked here, not by `choices`: Python 3.11's argparse checks an empty or default list
    # against the choices as one value and refused the bare command ("invalid choice: []").
    p.add_argument("names", nargs="*", help=f"of {', '.join(VARIANTS)}; default: every one")
    p.add_argument("--data-root", type=Path, default=Path("../shared/datasets/cifar10-jpeg"))
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in VARIANTS]
    if unknown:
        p.error(f"no variant {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    for name in args.names or VARIANTS:
        print(make(name, args.data_root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
