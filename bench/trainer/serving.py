"""The exported model of a finished run: its card's parity and latency, and `predict`'s
images/s on a folder against PyTorch eager on the same images and CPU (issue #26).

    python -m bench.trainer.serving results/<run> --images ../shared/datasets/cifar10-jpeg/test

The run is a search's results folder or a production training's (`python -m trainable train
--out RUN`, then `python -m trainable export RUN`): both keep `best/checkpoint.pt`,
`model.onnx` and `model_card.json` under the same names.

Both sides decode every image the same way (`trainable.data.decode`) and classify in batches
of 64: `predict` as a user runs it (a subprocess with ONNX Runtime), PyTorch eager in this
process on the checkpoint the model was exported from.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.support.env import environment, write_json
from trainable.data.decode import decode
from trainable.export.predict import BATCH, image_paths
from trainable.export.serving import serving_model
from trainable.files import checkpoint
from tuner.results.layout import ResultsDir

REPO = Path(__file__).resolve().parents[2]


def predict_images_per_s(model: Path, images: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "trainable", "predict", "--model", str(model), str(images)]
        done = subprocess.run(
            [*cmd, "--out", f"{tmp}/p.csv"], cwd=REPO, capture_output=True, text=True, check=True
        )
    match = re.search(r"\(([\d,]+) images/s\)", done.stderr)
    assert match, done.stderr
    return float(match.group(1).replace(",", ""))


def eager_images_per_s(results: ResultsDir, images: Path, size: int) -> float:
    model, _ = serving_model(checkpoint.load(results.best_checkpoint))
    paths = image_paths([images])
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(paths), BATCH):
            arrays = [decode(str(p), size) for p in paths[start : start + BATCH]]
            batch = np.stack([a for a in arrays if a is not None])
            model(torch.from_numpy(batch))
    return len(paths) / (time.perf_counter() - t0)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.trainer.serving", description=__doc__)
    p.add_argument("results", type=Path)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results = ResultsDir(args.results)
    card: dict[str, Any] = json.loads(results.model_card()[1].read_text())
    size = int(card["input"]["image_size"])
    onnx = predict_images_per_s(results.model("onnx"), args.images)
    eager = eager_images_per_s(results, args.images, size)
    parity, latency = card["parity"], card["latency"]
    print(f"| | {card['name']} |\n|---|---|")
    print(
        f"| ONNX top-1 agreement ({parity['images']:,} test images) | {parity['onnx']['top1_agreement']:.4%} |"
    )
    print(f"| ONNX largest probability difference | {parity['onnx']['max_prob_diff']:.2e} |")
    for key, ms in latency["ms_per_image"].items():
        print(f"| latency {key}, {latency['threads']} threads | {ms:.3f} ms/image |")
    print(f"| predict (ONNX Runtime, decode included) | {onnx:,.0f} images/s |")
    print(f"| PyTorch eager, same decode and batches | {eager:,.0f} images/s |")
    print(f"| ratio | {onnx / eager:.2f}x |")
    payload = {
        "results": str(args.results),
        "images": str(args.images),
        "card_parity": parity,
        "card_latency": latency,
        "predict_images_per_s": onnx,
        "eager_images_per_s": eager,
        "ratio": onnx / eager,
        "environment": environment(),
    }
    print(f"wrote {write_json('serving', payload, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
