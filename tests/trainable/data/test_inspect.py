"""Reading an image folder before decoding it: layouts, the carved test split, the summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainable.config import DatasetConfig
from trainable.data.datasets import load_splits
from trainable.data.inspect import inspect_folder
from trainable.data.scan import TEST_FRACTION, scan_folder
from trainable.errors import DataError


def flat_tree(root: Path, counts: dict[str, int], size: int = 12, mode: str = "L") -> None:
    """root/<class>/*.png, no train/ or test/ folders."""
    for i, (cls, n) in enumerate(counts.items()):
        (root / cls).mkdir(parents=True)
        for k in range(n):
            Image.new(mode, (size, size + 2), color=20 * i + k % 7).save(root / cls / f"{k}.png")


def test_a_flat_folder_gets_a_stratified_test_split_carved_the_same_way_every_time(
    tmp_path: Path,
) -> None:
    flat_tree(tmp_path / "d", {"a": 30, "b": 10, "c": 2})
    scan = scan_folder(tmp_path / "d")
    assert scan.test_carved and scan.classes == ("a", "b", "c")
    test_labels = [label for _, label in scan.samples["test"]]
    assert np.bincount(test_labels).tolist() == [round(30 * TEST_FRACTION), 2, 1]
    assert not {p for p, _ in scan.samples["test"]} & {p for p, _ in scan.samples["train"]}
    assert scan_folder(tmp_path / "d").samples == scan.samples  # the same files held out
    assert "carved" in scan.note()
    # Decoded and split like any folder; the provenance says where the test split came from.
    splits = load_splits(
        DatasetConfig(name="imagefolder", root=str(tmp_path / "d"), image_size=8, val_fraction=0.2)
    )
    assert len(splits.test) == 9 and "carved" in splits.provenance


def test_a_train_folder_without_test_is_carved_and_with_test_is_not(tmp_path: Path) -> None:
    flat_tree(tmp_path / "d" / "train", {"a": 5, "b": 5})
    assert scan_folder(tmp_path / "d").test_carved
    flat_tree(tmp_path / "d" / "test", {"a": 1, "b": 1})
    scan = scan_folder(tmp_path / "d")
    assert not scan.test_carved and len(scan.samples["test"]) == 2 and scan.note() == ""


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda r: r.mkdir(), "no class folders"),
        (lambda r: flat_tree(r, {"only": 3}), "1 class folder"),
        (lambda r: None, "does not exist"),
    ],
)
def test_structural_problems_are_one_line(tmp_path: Path, make: object, says: str) -> None:
    root = tmp_path / "d"
    make(root)  # type: ignore[operator]
    with pytest.raises(DataError, match=says) as err:
        scan_folder(root)
    assert "\n" not in str(err.value)


def test_inspection_reports_classes_sizes_modes_and_unreadable_files(tmp_path: Path) -> None:
    root = tmp_path / "d"
    flat_tree(root / "train", {"cat": 8, "dog": 2}, size=20, mode="L")
    flat_tree(root / "test", {"cat": 1, "dog": 1})
    Image.new("RGB", (40, 30)).save(root / "train" / "dog" / "big.png")
    (root / "train" / "cat" / "broken.png").write_bytes(b"not a png")
    summary = inspect_folder(root)
    assert summary.classes == ("cat", "dog") and not summary.test_carved
    assert (summary.train_counts, summary.test_counts) == ((9, 3), (1, 1))
    assert summary.modes == {"L": 10, "RGB": 1} and summary.grayscale
    assert summary.unreadable == (str(root / "train" / "cat" / "broken.png"),)
    assert summary.short_side() == 20 and summary.decode_s_per_image > 0
    text = "\n".join(summary.lines())
    assert "2 classes" in text and "grayscale" in text and "could not be opened" in text


def test_a_few_broken_files_are_skipped_counted_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "d"
    flat_tree(root / "train", {"a": 25, "b": 25})
    flat_tree(root / "test", {"a": 5, "b": 5})
    (root / "train" / "a" / "7.png").write_bytes(b"not a png")  # not an image
    whole = (root / "train" / "b" / "3.png").read_bytes()
    (root / "train" / "b" / "3.png").write_bytes(whole[: len(whole) // 2])  # truncated
    splits = load_splits(
        DatasetConfig(name="imagefolder", root=str(root), image_size=8, val_fraction=0.2)
    )
    assert len(splits.train) + len(splits.val) == 48 and len(splits.test) == 10
    assert "2 undecodable file(s) skipped: train/a/7.png, train/b/3.png" in splits.provenance
    assert "warning: skipped 2 file(s) of the 'train' split" in capsys.readouterr().err


def test_16_bit_palette_cmyk_and_rgba_images_decode_to_their_content(tmp_path: Path) -> None:
    root = tmp_path / "modes"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
    # 16-bit grey at half range: Pillow's own RGB conversion would clip it to white.
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(root / "train" / "a" / "g16.png")
    Image.new("P", (8, 8), 0).save(root / "train" / "a" / "pal.png")
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(root / "train" / "b" / "cmyk.jpg")
    Image.new("RGBA", (8, 8), (10, 20, 30, 128)).save(root / "train" / "b" / "rgba.png")
    Image.new("RGB", (8, 8)).save(root / "test" / "a" / "t.png")
    Image.new("RGB", (8, 8)).save(root / "test" / "b" / "t.png")
    splits = load_splits(
        DatasetConfig(name="imagefolder", root=str(root), image_size=8, val_fraction=0.0)
    )
    images = {int(lbl): [] for lbl in splits.train.labels}
    for img, lbl in zip(np.asarray(splits.train.images), splits.train.labels, strict=True):
        images[int(lbl)].append(img)
    g16 = next(i for i in images[0] if i.mean() > 100)
    assert abs(int(g16[0, 0, 0]) - 128) <= 1 and (g16 == g16[0, 0, 0]).all()
    assert any((i[0, 0] == (10, 20, 30)).all() for i in images[1])  # RGBA: alpha dropped
    assert any((i[0, 0] == (255, 255, 255)).all() for i in images[1])  # CMYK 0,0,0,0: white
