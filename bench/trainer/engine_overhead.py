"""The trainer's overhead: its training-phase images/s against a bare loop, same process.

    python -m bench.trainer.engine_overhead [--config configs/cifar10_smallnet.yaml] [--set KEY=VALUE]
    python -m bench.trainer.engine_overhead --smoke      # tiny and fast: checks the bench, not a result

Both sides train the same network (built and initialised by the trainer's own code), at the
same batch size, precision, memory format and device, with the same optimizer:

- trainer: `engine.train` on synthetic data (or `--data-root`), its training phase of each
  epoch timed through the public `TrainHooks` (CUDA events on a GPU, else a clock); the
  images per epoch come from its `EpochStats`. Included: the device loader (shuffle,
  augmentation, normalisation), the schedule, the GradScaler, lookahead, the on-device metric
  sums and the one read at the epoch's end. Not included: evaluation and checkpoints.
- bare: the same number of steps over batches normalised once beforehand (no shuffling, no
  augmentation), each `forward, loss, zero_grad, backward, optimizer.step`, one sync per epoch.

A bare epoch runs right after each trainer epoch (from the trainer's `epoch_stats` hook), so
drift on a shared machine lands on both sides alike; each side's first `--warmup` epochs are
left out (the bare loop's own warm-up runs before the trainer starts), and the median epoch
gives images/s. Prints a table and writes bench/results/engine_overhead.json (`--json`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.device.gpu import epoch_timer
from bench.support.env import environment, write_json
from trainable.config import TrainConfig, build_config, deep_merge, load_config
from trainable.data.datasets import ArrayDataset, Splits, load_splits
from trainable.data.loaders import channel_stats, train_steps
from trainable.model.network import build_network, init_from_data, set_whiten_bias_trainable
from trainable.training import engine
from trainable.training.loop import EpochStats, TrainHooks, sync
from trainable.training.optim import build_optimizer
from trainable.training.runtime import Runtime, resolve

SMOKE_LABEL = "SMOKE TEST (tiny model and data): checks the bench runs; the ratio means nothing"

# Synthetic CIFAR-sized data: a few epochs of a few batches fit in seconds to a minute on a CPU.
SMALL: dict[str, Any] = {
    "dataset": {
        "name": "synthetic",
        "num_classes": 10,
        "image_size": 32,
        "synthetic_train_size": 2048,
        "synthetic_test_size": 100,
        "val_fraction": 0.1,
    },
    "eval_batch_size": 1024,
    "epochs": 5,
    "device": "cpu",
}
SMOKE: dict[str, Any] = {
    "dataset": {
        "name": "synthetic",
        "num_classes": 4,
        "image_size": 16,
        "synthetic_train_size": 320,
        "synthetic_test_size": 64,
        "val_fraction": 0.2,
    },
    "model": {"width": 8},
    "batch_size": 64,
    "epochs": 3,
    "device": "cpu",
}


class BareLoop:
    """The minimum a training step needs, on batches prepared once."""

    def __init__(self, config: TrainConfig, splits: Splits, rt: Runtime) -> None:
        self.rt, self.model_cfg = rt, config.model
        self.fmt = torch.channels_last if config.channels_last else torch.contiguous_format
        torch.manual_seed(config.seed)
        net = build_network(config.model, len(splits.classes))
        self.net = net.to(rt.device, memory_format=self.fmt)  # type: ignore[call-overload]
        mean, std = channel_stats(splits.train.images)
        init_from_data(self.net, config.model, splits.train.images, mean, std)
        self.opt = build_optimizer(self.net, config)
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.uses_grad_scaler)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.batches = self._batches(splits.train, config.batch_size, mean, std)

    def _batches(
        self, data: ArrayDataset, batch_size: int, mean: list[float], std: list[float]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        steps = train_steps(len(data), batch_size)
        x = torch.from_numpy(np.ascontiguousarray(data.images)).permute(0, 3, 1, 2).float() / 255
        x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
        y = torch.from_numpy(np.ascontiguousarray(data.labels)).long()
        out = []
        for i in range(steps):
            window = slice(i * batch_size, (i + 1) * batch_size)
            xb = x[window].to(self.rt.device).contiguous(memory_format=self.fmt)
            out.append((xb, y[window].to(self.rt.device)))
        return out

    def epoch(self, epoch: int) -> tuple[float, int]:
        """(seconds, images) of one pass over the prepared batches, as the trainer's `epoch`
        (a whitening stem's bias freezes after the same epoch: less backward work)."""
        set_whiten_bias_trainable(self.net, self.model_cfg, epoch)
        self.net.train()
        t0 = time.perf_counter()
        for x, y in self.batches:
            with self.rt.autocast():
                loss = self.criterion(self.net(x), y)
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        sync(self.rt)
        float(loss.detach())  # the one read, as the trainer's epoch has
        return time.perf_counter() - t0, sum(len(y) for _, y in self.batches)


def side(records: Sequence[tuple[float, int]], excluded: int) -> dict[str, Any]:
    timed = list(records[excluded:]) or list(records)
    median_s = statistics.median(s for s, _ in timed)
    images = timed[0][1]
    return {
        "epoch_s": [s for s, _ in records],
        "warmup_epochs_excluded": len(records) - len(timed),
        "images_per_epoch": images,
        "median_epoch_s": median_s,
        "images_per_s": images / median_s,
    }


def measure(config: TrainConfig, warmup: int) -> dict[str, Any]:
    rt = resolve(config)
    splits = load_splits(config.dataset)
    bare = BareLoop(config, splits, rt)
    bare_epochs = [bare.epoch(1) for _ in range(warmup)]
    hooks, trainer_epochs = epoch_timer(rt.device)

    def then_bare(epoch: int, stats: EpochStats) -> None:
        hooks.epoch_stats(epoch, stats)
        bare_epochs.append(bare.epoch(epoch))  # right after each trainer epoch: same conditions

    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as work:
        engine.train(
            config,
            Path(work) / "run",
            data=splits,
            report=lambda *_: None,
            hooks=TrainHooks(around=hooks.around, epoch_stats=then_bare),
        )
    # The bare side leaves out its own warm-up and the epochs paired with the trainer's.
    t, b = side(trainer_epochs, warmup), side(bare_epochs, 2 * warmup)
    m = config.model
    return {
        "device": rt.describe(),
        "model": f"{m.name} width {m.width} depth {m.depth}",
        "optimizer": config.optimizer.name,
        "batch_size": config.batch_size,
        "steps_per_epoch": train_steps(len(splits.train), config.batch_size),
        "precision": str(rt.dtype).removeprefix("torch."),
        "channels_last": config.channels_last,
        "loader": config.loader.kind,
        "trainer": t,
        "bare": b,
        "ratio": t["images_per_s"] / b["images_per_s"],
        # Each timed trainer epoch against the bare epoch right after it, then the median.
        "ratio_paired_median": statistics.median(
            (tn / ts) / (bn / bs)
            for (ts, tn), (bs, bn) in zip(
                trainer_epochs[warmup:], bare_epochs[2 * warmup :], strict=True
            )
        ),
        "config": config.to_dict(),
    }


def print_table(r: dict[str, Any], env: dict[str, Any]) -> None:
    if r["smoke"]:
        print(f"\n**{SMOKE_LABEL}**")
    print(
        f"\n{env['cpu']}, {env['torch_threads']} threads; {r['device']}; {r['model']}, "
        f"{r['optimizer']}, batch {r['batch_size']} x {r['steps_per_epoch']} steps; "
        f"{r['loader']} loader\n"
    )
    print("| loop | epochs timed (median) | epoch s | images/s |")
    print("|---|---|---|---|")
    for name in ("bare", "trainer"):
        s = r[name]
        n = len(s["epoch_s"]) - s["warmup_epochs_excluded"]
        print(f"| {name} | {n} | {s['median_epoch_s']:.3f} | {s['images_per_s']:,.0f} |")
    print(
        f"\ntrainer / bare: {r['ratio']:.3f}x (medians); "
        f"{r['ratio_paired_median']:.3f}x (median of epoch pairs)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default="configs/cifar10_smallnet.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE")
    p.add_argument("--warmup", type=int, default=1, help="epochs left out of each median")
    p.add_argument("--smoke", action="store_true", help="tiny data and model: seconds")
    p.add_argument("--json", type=Path, help="output (default bench/results/engine_overhead.json)")
    args = p.parse_args(argv)
    env = environment()
    base = load_config(args.config).to_dict()
    merged = deep_merge(base, SMOKE if args.smoke else SMALL)
    config = build_config(merged, args.overrides)
    result = {"smoke": bool(args.smoke), **measure(config, args.warmup)}
    result["environment"] = env
    print_table(result, env)
    name = "engine_overhead_smoke" if args.smoke else "engine_overhead"
    print(f"-> {write_json(name, result, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
