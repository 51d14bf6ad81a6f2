"""airbench94, as published, against our fastnet recipe at airbench94's width, on one GPU (#29).

    python -m bench.device.airbench --data-root DATA [--runs 2] [--json PATH]

airbench94 is Keller Jordan's published script (PyPI `airbench` 0.1.8, carried by the GPU kit):
widths 64/256/256, 9.9 epochs of batch 1024. Ours is `configs/cifar10_fastnet.yaml` at
`model.width=64` (the same widths), 10 epochs. Both train on all 50,000 training images of the
same data and read the test split, each with its own test-time augmentation; both get a warm-up
run first (CUDA context, cuDNN autotuning). Speed is training images per second: airbench's
from its timed call, ours from the median of the measured run's epochs (2 warm-up epochs out).

airbench reads `cifar10/{train,test}.pt` under the working directory (uint8 NHWC images,
labels, classes); `export_for_airbench` writes them from any CIFAR-10 source this repo reads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from bench.device.gpu import NO_GPU, epochs_and_accuracy, full_train_splits
from bench.support.env import environment, write_json
from trainable.config import load_config
from trainable.data.datasets import Splits, load_splits
from trainable.errors import UserError

AIRBENCH_EPOCHS = 9.9  # airbench94's hyp['opt']['train_epochs']
OUR_OVERRIDES = ("model.width=64", "device=cuda")


def export_for_airbench(splits: Splits, folder: Path) -> None:
    """train.pt (train + validation: all training images) and test.pt, as airbench saves them."""
    folder.mkdir(parents=True, exist_ok=True)
    full = full_train_splits(splits)
    for name, part in (("train", full.train), ("test", full.test)):
        payload = {
            "images": torch.from_numpy(part.images[:]),  # uint8 (N, 32, 32, 3)
            "labels": torch.from_numpy(part.labels),
            "classes": list(splits.classes),
        }
        torch.save(payload, folder / f"{name}.pt")


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_airbench(work: Path, runs: int) -> dict[str, Any]:
    import airbench  # the GPU kit carries it; imported here so the CPU path needs none

    seconds: list[float] = []
    accs: list[float] = []
    with _cwd(work):  # airbench reads ./cifar10/*.pt
        airbench.warmup94(verbose=True)  # returns after one step: compile, autotune
        test = airbench.CifarLoader("cifar10", train=False, batch_size=2000)
        for _ in range(runs):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model = airbench.train94(verbose=False)
            torch.cuda.synchronize()
            seconds.append(time.perf_counter() - t0)
            accs.append(float(airbench.evaluate(model, test, tta_level=2)))
    n_train = 50_000
    return {
        "script": "airbench 0.1.8 (PyPI), train94: widths 64/256/256, 9.9 epochs, batch 1024",
        "train_s": seconds,
        "images_per_s": n_train * AIRBENCH_EPOCHS / statistics.median(seconds),
        "test_acc_tta": accs,
        "note": "train_s is the whole train94 call: whitening init and every step, no eval",
    }


def run_ours(data_root: str, runs: int, work: Path) -> dict[str, Any]:
    config = load_config(
        "configs/cifar10_fastnet.yaml", [f"dataset.root={data_root}", *OUR_OVERRIDES]
    )
    full = full_train_splits(load_splits(config.dataset))
    rows = []
    for i in range(runs):
        seeded = config.model_copy(update={"seed": config.seed + i})
        stats, to_acc = epochs_and_accuracy(
            seeded, full, torch.device("cuda"), 2, 0.94, work / str(i)
        )
        # The last epoch's, as airbench's: a fixed schedule, no choosing on the test split.
        rows.append((stats["images_per_s"], to_acc["test_acc_by_epoch"][-1]))
    return {
        "config": "configs/cifar10_fastnet.yaml " + " ".join(OUR_OVERRIDES),
        "epochs": config.epochs,
        "images_per_s_runs": [r[0] for r in rows],
        "images_per_s": statistics.median(r[0] for r in rows),
        "test_acc_tta": [r[1] for r in rows],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.device.airbench", description=__doc__.split("\n")[0]
    )
    p.add_argument("--data-root", required=True, help="CIFAR-10 (image folder or official)")
    p.add_argument("--runs", type=int, default=2, help="timed runs of each, after a warm-up")
    p.add_argument("--json", type=Path, help="output JSON (default bench/results/airbench.json)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_GPU.split(":")[0] + ": airbench runs on CUDA only", file=sys.stderr)
        return 2
    env = environment()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-airbench-") as tmp:
            work = Path(tmp)
            export_for_airbench(load_splits(load_config("configs/cifar10_fastnet.yaml",
                                [f"dataset.root={args.data_root}"]).dataset), work / "cifar10")  # fmt: skip
            theirs = run_airbench(work, args.runs)
            print(
                f"airbench94: {theirs['images_per_s']:,.0f} img/s, {theirs['test_acc_tta']}",
                flush=True,
            )
            ours = run_ours(args.data_root, args.runs, work)
            print(f"ours: {ours['images_per_s']:,.0f} img/s, {ours['test_acc_tta']}", flush=True)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    payload = {
        "device_name": torch.cuda.get_device_name(0),
        "airbench94": theirs,
        "ours_width64": ours,
        "images_per_s_ratio_ours_over_airbench": ours["images_per_s"] / theirs["images_per_s"],
        "environment": env,
    }
    print(f"ratio ours / airbench94: {payload['images_per_s_ratio_ours_over_airbench']:.3f}x")
    print(f"-> {write_json('airbench', payload, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
