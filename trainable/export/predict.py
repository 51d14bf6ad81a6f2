"""`python -m trainable predict --model model.onnx IMAGES...|DIR`: ONNX Runtime, Pillow and
NumPy only. Nothing here imports torch or Ray (a test runs it where importing them fails), so
a serving machine needs only `pip install onnxruntime pillow numpy`.

Each image is decoded as the trainer's decoder does (any Pillow mode to RGB, 16-bit scaled
from its full range), resized with Pillow's bilinear to the model's size (read from the card
beside the model, else from the graph), and classified. Writes `path,class,probability` plus
the top-k classes and probabilities.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from trainable.data.decode import decode

# torchvision's IMG_EXTENSIONS (what the trainer reads), written out: importing
# torchvision would import torch, which a serving machine need not have.
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
BATCH = 64


def image_paths(inputs: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in EXTENSIONS)
        else:
            found.append(item)
    return found


def model_contract(model: Path) -> tuple[list[str], int]:
    """Classes in output order and the input size, from `model_card.json` beside the model."""
    card = model.parent / "model_card.json"
    if not card.is_file():
        raise FileNotFoundError(f"{card} not found: export the model with its card")
    data = json.loads(card.read_text())
    return list(data["classes"]), int(data["input"]["image_size"])


def _chunks(paths: list[Path], n: int) -> Iterator[list[Path]]:
    for i in range(0, len(paths), n):
        yield paths[i : i + n]


def predict(model: Path, inputs: Sequence[Path], out: Path | None, top_k: int) -> int:
    import onnxruntime as ort

    classes, size = model_contract(model)
    paths = image_paths(inputs)
    if not paths:
        print("error: no images found in the given paths", file=sys.stderr)
        return 3
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    k = max(1, min(top_k, len(classes)))
    header = ["path", "class", "probability"]
    header += [f"{kind}{i}" for i in range(1, k + 1) for kind in ("class", "probability")]
    rows, skipped, t0 = [], [], time.perf_counter()
    for chunk in _chunks(paths, BATCH):
        loaded = [(p, decode(str(p), size)) for p in chunk]
        good = [(p, a) for p, a in loaded if a is not None]
        skipped += [p for p, a in loaded if a is None]
        if not good:
            continue
        probs = session.run(None, {"images": np.stack([a for _, a in good])})[0]
        for (p, _), row in zip(good, probs, strict=True):
            order = np.argsort(-row)[:k]
            top = [v for i in order for v in (classes[i], f"{row[i]:.6f}")]
            rows.append([str(p), classes[order[0]], f"{row[order[0]]:.6f}", *top])
    elapsed = time.perf_counter() - t0
    stream = open(out, "w", newline="") if out else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    finally:
        if out:
            stream.close()
    print(
        f"{len(rows):,} images classified in {elapsed:.2f} s ({len(rows) / elapsed:,.0f} images/s)"
        + (f"; {len(skipped)} could not be decoded, e.g. {skipped[0]}" if skipped else "")
        + (f" -> {out}" if out else ""),
        file=sys.stderr,
    )
    return 0 if rows else 3
