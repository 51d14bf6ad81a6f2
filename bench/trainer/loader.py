"""Device-resident loader vs DataLoader pipelines, side by side in one run.

    python -m bench.trainer.loader --data-root ../shared/datasets/cifar10-jpeg [--repeats 3]

Loader only: one pass over the training split with augmentation (crop + flip + normalise), as
images/s, median of `--repeats` passes after a warm-up pass. Pipelines:
  device          uint8 tensor on the training device, batched augmentation (trainable.data.loaders)
  dataloader      torch DataLoader, tensor transforms (torchvision v2) in worker processes
  dataloader-pil  the classic recipe: PIL images, RandomCrop/RandomHorizontalFlip/ToTensor/
                  Normalize per sample in worker processes
End to end: the real trainer (`trainable.train`) on a subset with the default model, for
`device` and `dataloader`, runs alternating; images/s is the median over all epochs except each
run's first (warm-up).
Prints a table with ratios against `device` and writes bench/results/loader.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.support.env import environment, write_json
from trainable.config import AugmentConfig, LoaderConfig, build_config, load_config
from trainable.data.datasets import ArrayDataset, load_splits
from trainable.data.loaders import DeviceLoader, channel_stats, make_dataloader
from trainable.training.engine import train


class PILImages(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    def __init__(
        self, data: ArrayDataset, mean: list[float], std: list[float], padding: int
    ) -> None:
        from torchvision import transforms as T

        self.data = data
        self.transform = T.Compose(
            [
                T.RandomCrop(data.images.shape[1], padding=padding),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(mean, std),
            ]
        )

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.data.images[i])), int(self.data.labels[i])


def images_per_s(loader: Iterable[tuple[torch.Tensor, torch.Tensor]], repeats: int) -> float:
    rates = []
    for i in range(repeats + 1):  # pass 0 warms up workers and caches
        t0, n = time.perf_counter(), 0
        for x, _ in loader:
            n += len(x)
        if i:
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-root", help="CIFAR-10 (image folder or official); synthetic if omitted")
    p.add_argument("--config", default="configs/cifar10_smallnet.yaml", help="model for end to end")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--e2e-images", type=int, default=5120, help="training images per end-to-end epoch"
    )
    p.add_argument(
        "--e2e-epochs", type=int, default=3, help="epochs per end-to-end run (first is warm-up)"
    )
    p.add_argument("--e2e-repeats", type=int, default=2, help="alternating runs per pipeline")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    env = environment()  # before the run: the commit that is measured

    dataset = (
        {"name": "cifar10", "root": args.data_root}
        if args.data_root
        else {"name": "synthetic", "synthetic_train_size": 50000, "image_size": 32}
    )
    splits = load_splits(build_config({"dataset": dataset}).dataset)
    train_set, device = splits.train, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mean, std = channel_stats(train_set.images)
    aug = AugmentConfig(crop_padding=4, hflip=True)
    lcfg = LoaderConfig(num_workers=args.workers, persistent_workers=True, prefetch_factor=4)
    pin = device.type == "cuda"
    pipelines: dict[str, Iterable[tuple[torch.Tensor, torch.Tensor]]] = {
        "device": DeviceLoader(
            train_set, args.batch_size, device, mean, std, train=True, augment=aug
        ),
        "dataloader": make_dataloader(
            train_set, args.batch_size, mean, std, lcfg, train=True, augment=aug, pin_memory=pin
        ),
        "dataloader-pil": torch.utils.data.DataLoader(
            PILImages(train_set, mean, std, 4),
            batch_size=args.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
            pin_memory=pin,
            prefetch_factor=4 if args.workers else None,
        ),
    }
    rows: list[dict[str, Any]] = []
    for name, loader in pipelines.items():
        rate = images_per_s(loader, args.repeats)
        rows.append({"measure": "loader only", "pipeline": name, "images_per_s": rate})
        print(f"loader only  {name:15s} {rate:10.0f} img/s", flush=True)

    # End to end is noisy on a shared VM: alternate the pipelines, several epochs each, and
    # take the median of all epochs but each run's first (warm-up).
    base = load_config(args.config)
    e2e: dict[str, list[float]] = {"device": [], "dataloader": []}
    data_sets = (
        [f"dataset.root={args.data_root}"]
        if args.data_root
        else ["dataset.name=synthetic", "dataset.synthetic_train_size=50000"]
    )
    for _ in range(args.e2e_repeats):
        for kind in e2e:
            cfg = build_config(
                base.to_dict(),
                [
                    f"loader.kind={kind}",
                    f"loader.num_workers={args.workers}",
                    f"epochs={args.e2e_epochs}",
                    f"dataset.train_subset={args.e2e_images}",
                    "dataset.val_subset=500",
                    *data_sets,
                ],
            )
            with tempfile.TemporaryDirectory() as tmp:
                result = train(cfg, tmp, report=lambda *_: None)
            e2e[kind] += [h["images_per_s"] for h in result.history[1:]]
    for kind, rates in e2e.items():
        rate = statistics.median(rates)
        rows.append(
            {
                "measure": "end to end",
                "pipeline": kind,
                "images_per_s": rate,
                "epochs_measured": len(rates),
                "model": f"{base.model.name} w{base.model.width}",
            }
        )
        print(
            f"end to end   {kind:15s} {rate:10.0f} img/s (median of {len(rates)} epochs)",
            flush=True,
        )

    print("\n| measure | pipeline | images/s | device ÷ this |\n|---|---|---|---|")
    for row in rows:
        ref = next(r for r in rows if r["measure"] == row["measure"] and r["pipeline"] == "device")
        row["device_speedup"] = ref["images_per_s"] / row["images_per_s"]
        print(
            f"| {row['measure']} | {row['pipeline']} | {row['images_per_s']:.0f} | {row['device_speedup']:.2f}x |"
        )
    payload = {
        "data": "CIFAR-10 (JPEG q75 copy)"
        if args.data_root and "jpeg" in args.data_root.lower()
        else (args.data_root or "synthetic"),
        "training_device": str(device),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "repeats": args.repeats,
        "e2e_images_per_epoch": args.e2e_images,
        "environment": env,
        "rows": rows,
    }
    print(f"-> {write_json('loader', payload, args.json)}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
