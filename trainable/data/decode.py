"""One image file to uint8 RGB at a given size: the trainer's decoder and `predict` share it,
so a served image is read exactly as the training images were. NumPy and Pillow only."""

from __future__ import annotations

from typing import Any

import numpy as np

WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def to_rgb(img: Any) -> Any:
    """Any Pillow mode as 8-bit RGB. 16-bit and 32-bit integer images (medical, microscopy
    PNGs and TIFFs) are scaled from their full range: Pillow's own conversion clips them at
    255, which turns most of a 16-bit image white. Palette, CMYK, LA and RGBA images go
    through Pillow's conversion (alpha dropped)."""
    from PIL import Image

    if img.mode in WIDE_MODES:
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    return img.convert("RGB")


def decode(path: str, size: int) -> np.ndarray | None:
    """The image as uint8 (size, size, 3), resized with Pillow's bilinear; None when the file
    cannot be decoded (broken, truncated, not an image): the caller skips and counts it."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            rgb = to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)
