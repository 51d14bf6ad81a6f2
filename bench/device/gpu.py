"""GPU speed in one run: the two ceilings, FLOPs per image, epoch time, time-to-accuracy, packing.

    python -m bench.device.gpu --data-root ../shared/datasets/cifar10-jpeg [--compile] [--json PATH]
    python -m bench.device.gpu --smoke      # tiny, on the CPU: exercises every section; not a result

On one CUDA GPU (issue #6):
1. Ceilings (bench/trainer/roofline.py): the device's bf16 matmul rate (square matmuls, median,
   TFLOP/s) and its copy bandwidth (device-to-device `copy_`, read + write bytes, median, GB/s).
2. FLOPs of the model per image (torch.utils.flop_counter: convolutions and matmuls, 2 per
   multiply-add), forward and forward + backward.
3. Epochs: the trainer's own `train()` on the whole 50k training set with the test split as
   its per-epoch evaluation; each epoch's training phase (the trainer's `train_epoch`, through
   the public `TrainHooks` of `engine.train`) is timed with CUDA events. A 1-epoch run in the
   same process goes first so CUDA/cuDNN start-up is not in the numbers; the measured run's
   first `--warmup-epochs` are left out of the median.
   Images/s and the fraction of the bf16 ceiling (train FLOPs/img x img/s / matmul rate).
   With `--compile`, the compile time is reported apart (the trainer's `compile_s` metric).
4. Time to `--target-acc` (0.94) test accuracy, or to the best reached: cumulative training
   time of the measured run, with and without the per-epoch test evaluation.
5. Host syncs per epoch (`trainable.training.syncs`): one more epoch, untimed, with every op watched:
   reads of device values, host-device copies, data-dependent shapes and (on CUDA) the
   synchronising calls that `torch.cuda.set_sync_debug_mode` reports, for the training and
   the evaluation phase, beside their batch counts.
6. Packing (bench/device/packing.py): 1, 2, 4 and 8 concurrent trials (separate spawned processes,
   each with its CUDA memory capped to 1/n of the card, each a normal trainer run with
   evaluation and checkpoints), aligned by a barrier after a warm-up epoch; total and
   per-trial images/s.

Accuracies on the JPEG copy of CIFAR-10 are labelled as such (lossy, quality 75: a little below
official CIFAR-10; see its PROVENANCE.md). Prints tables and writes bench/results/gpu.json
(--smoke: bench/results/gpu_smoke.json). Every figure printed is measured in this run; smoke
figures are CPU timings of a tiny model and are labelled as such, not GPU results.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.device.packing import packing
from bench.support.env import environment, write_json
from bench.trainer.roofline import ceilings, flops_per_image
from trainable.config import TrainConfig, build_config, deep_merge, load_config
from trainable.data.datasets import ArrayDataset, Splits, load_splits
from trainable.data.loaders import train_steps
from trainable.errors import UserError
from trainable.training import engine
from trainable.training.loop import EVALUATION, TRAIN, EpochStats, TrainHooks
from trainable.training.runtime import resolve
from trainable.training.syncs import SyncCount, count_host_syncs

NO_GPU = "no CUDA GPU: run with --smoke for the CPU smoke test"
SMOKE_LABEL = "CPU SMOKE TEST (tiny model and data on the CPU): not a GPU result"

# Smoke: a few hundred 16x16 synthetic images and a width-8 net, so every section runs in
# seconds on a 2-core CPU. Only the code paths are exercised; the numbers mean nothing.
SMOKE_OVERRIDES: dict[str, Any] = {
    "dataset": {
        "name": "synthetic",
        "num_classes": 4,
        "image_size": 16,
        "synthetic_train_size": 384,
        "synthetic_test_size": 128,
        "val_fraction": 0.25,
    },
    "model": {"width": 8},
    "batch_size": 64,
    "eval_batch_size": 256,
    "epochs": 3,  # 1 warm-up + 2 timed
    "device": "cpu",
}


# --- 3 and 4. epochs and time to accuracy ---------------------------------------------------


class _PhaseTimer:
    """Times one phase with CUDA events on a GPU (device time, no host jitter), else a clock."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds = device, 0.0

    def __enter__(self) -> _PhaseTimer:
        if self.device.type == "cuda":
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.device.type == "cuda":
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            end.synchronize()
            self.seconds = self._start.elapsed_time(end) / 1000
        else:
            self.seconds = time.perf_counter() - self._t0


def epoch_timer(device: torch.device) -> tuple[TrainHooks, list[tuple[float, int]]]:
    """Hooks that time the training phase of every epoch of `engine.train` (the product's
    exact hot loop, optimiser and scheduler included) and a list that fills with
    (seconds, images) per epoch."""
    records: list[tuple[float, int]] = []
    timers: dict[int, _PhaseTimer] = {}

    def around(phase: str, epoch: int) -> contextlib.AbstractContextManager[Any]:
        if phase != TRAIN:
            return contextlib.nullcontext()
        timers[epoch] = _PhaseTimer(device)
        return timers[epoch]

    def epoch_stats(epoch: int, stats: EpochStats) -> None:
        records.append((timers.pop(epoch).seconds, stats.images))

    return TrainHooks(around=around, epoch_stats=epoch_stats), records


def full_train_splits(splits: Splits) -> Splits:
    """All training images (train + validation) for training, the test split as evaluation:
    the time-to-accuracy protocol of DAWNBench and airbench (a fixed schedule, test accuracy
    read after every epoch, no model selection on it)."""
    train = ArrayDataset(
        np.concatenate([splits.train.images, splits.val.images]),
        np.concatenate([splits.train.labels, splits.val.labels]),
    )
    return Splits(train, splits.test, splits.test, splits.classes, splits.provenance)


def train_run(
    config: TrainConfig, data: Splits, device: torch.device, out_dir: Path
) -> tuple[list[dict[str, float]], list[tuple[float, int]], float]:
    """One `engine.train` call: its per-epoch metrics, timed epochs and wall seconds."""
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    hooks, epochs = epoch_timer(device)
    engine.train(
        config, out_dir, data=data, report=lambda m, _d: history.append(dict(m)), hooks=hooks
    )
    return history, epochs, time.perf_counter() - t0


def epochs_and_accuracy(
    config: TrainConfig,
    data: Splits,
    device: torch.device,
    warmup_epochs: int,
    target_acc: float,
    work: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    # Cold run first: CUDA context, cuDNN autotuning and (with compile) the first compile
    # land here, so the measured run below starts warm like a trial in a running search.
    cold_history, cold_epochs, cold_wall_s = train_run(
        config.model_copy(update={"epochs": 1}), data, device, work / "cold"
    )
    history, epochs, wall_s = train_run(config, data, device, work / "measured")
    train_s = [s for s, _ in epochs]
    steady_s = train_s[warmup_epochs:] or train_s  # a run shorter than the warm-up: use all
    median_epoch_s = statistics.median(steady_s)
    images_per_epoch = epochs[-1][1]
    cold_first_s = cold_epochs[0][0]
    epoch_stats: dict[str, Any] = {
        "timer": "cuda_events" if device.type == "cuda" else "perf_counter",
        "epochs": len(epochs),
        "warmup_epochs_excluded": len(train_s) - len(steady_s),
        "epoch_train_s": train_s,
        "median_epoch_train_s": median_epoch_s,
        "images_per_epoch": images_per_epoch,
        "images_per_s": images_per_epoch / median_epoch_s,
        "cold_first_epoch_train_s": cold_first_s,
        "cold_run_wall_s": cold_wall_s,
        # What a cold process's first epoch costs beyond a steady one: compilation (with
        # --compile), cuDNN autotuning, allocator growth.
        "cold_first_epoch_excess_s": cold_first_s - median_epoch_s,
        # The trainer's own measure: first train step plus the eval graph, timed apart.
        "compile_s": cold_history[0].get("compile_s") if config.compile and cold_history else None,
    }
    accs = [h["val_acc"] for h in history]  # the evaluation split here is the test split
    cum_train_s = list(np.cumsum(train_s[: len(accs)]).tolist())
    cum_epoch_s = list(np.cumsum([h["epoch_s"] for h in history]).tolist())
    hit = next((i for i, a in enumerate(accs) if a >= target_acc), None)
    best = int(np.argmax(accs))
    to_acc: dict[str, Any] = {
        "target_acc": target_acc,
        "reached": hit is not None,
        "epochs_to_target": hit + 1 if hit is not None else None,
        "train_s_to_target": cum_train_s[hit] if hit is not None else None,
        "train_and_eval_s_to_target": cum_epoch_s[hit] if hit is not None else None,
        "best_test_acc": accs[best],
        "best_epoch": best + 1,
        "train_s_to_best": cum_train_s[best],
        "train_and_eval_s_to_best": cum_epoch_s[best],
        "test_acc_by_epoch": [round(a, 4) for a in accs],
        "cum_train_s_by_epoch": cum_train_s,
        "run_wall_s": wall_s,
        "note": "train_s: CUDA-event time of the training phase only; train_and_eval_s adds "
        "the per-epoch test evaluation (host clock); run_wall_s adds data upload and checkpoints",
    }
    return epoch_stats, to_acc


def more_seeds(
    config: TrainConfig, data: Splits, device: torch.device, seeds: Sequence[int], work: Path
) -> list[dict[str, Any]]:
    """The measured run again with other seeds (the recipe's spread: median of 3 in issue #11):
    each seed's test accuracy after every epoch and its summed training-phase seconds."""
    runs = []
    for seed in seeds:
        run_cfg = config.model_copy(update={"seed": seed})
        history, epochs, wall_s = train_run(run_cfg, data, device, work / f"seed{seed}")
        accs = [round(h["val_acc"], 4) for h in history]  # the test split here
        runs.append(
            {
                "seed": seed,
                "test_acc_by_epoch": accs,
                "final_test_acc": accs[-1],
                "train_s": sum(s for s, _ in epochs),
                "run_wall_s": wall_s,
            }
        )
    return runs


def seed_summary(first: dict[str, Any], seed: int, extra: list[dict[str, Any]]) -> dict[str, Any]:
    finals = [first["test_acc_by_epoch"][-1], *(r["final_test_acc"] for r in extra)]
    return {
        "seeds": [seed, *(r["seed"] for r in extra)],
        "final_test_acc": finals,
        "median_final_test_acc": statistics.median(finals),
        "runs": extra,
        "note": "final-epoch test accuracy (no model selection); the first seed is the "
        "measured run of the epochs section",
    }


# --- 5. host syncs per epoch ---------------------------------------------------------------


def host_sync_audit(
    config: TrainConfig, data: Splits, device: torch.device, work: Path
) -> dict[str, Any]:
    """One more 1-epoch trainer run, its training and evaluation phases watched op by op
    (`trainable.training.syncs`): what each phase reads back to the host, copies across the bus and
    waits for, against its number of batches. Untimed (watching slows every op) and uncompiled
    (the watcher sees eager ops)."""
    seen: dict[str, SyncCount] = {}

    @contextlib.contextmanager
    def watch(phase: str, _epoch: int) -> Iterator[None]:
        with count_host_syncs(device) as count:
            yield
        seen[phase] = count

    audit = config.model_copy(update={"epochs": 1, "compile": False})
    hooks = TrainHooks(around=watch)
    engine.train(audit, work / "audit", data=data, report=lambda *_: None, hooks=hooks)
    eval_batches = -(-len(data.val) // config.eval_batch_size)
    return {
        "train": {
            "batches": train_steps(len(data.train), config.batch_size),
            **seen[TRAIN].as_dict(),
        },
        "evaluation": {"batches": eval_batches, **seen[EVALUATION].as_dict()},
        "note": "counted per epoch: reads = .item()/bool()/float() of a device value; copies "
        "across the host-device bus; cuda_syncs from torch.cuda.set_sync_debug_mode (None off "
        "CUDA). Expected: a constant few per epoch (the epoch's order and augmentation draws "
        "sent once, the metrics read once), none per batch",
    }


# --- report ---------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def print_tables(payload: dict[str, Any]) -> None:
    tag = f"**{SMOKE_LABEL}**\n\n" if payload["smoke"] else ""
    c, f, e, a = (payload[k] for k in ("ceilings", "flops", "epochs", "time_to_accuracy"))
    print(f"\n{tag}Device: {payload['device_name']}, autocast {payload['autocast_dtype']}")
    print(f"Model: {payload['model']}; data: {payload['data']}\n")
    rates = ", ".join(f"{k} {v:.3g}" for k, v in c["matmul_tflops_by_dtype"].items())
    print("| matmul TFLOP/s | copy GB/s | params | fwd GFLOP/img | train GFLOP/img |")
    print("|---|---|---|---|---|")
    print(
        f"| {rates} | {c['copy_gb_per_s']:.3g} | {f['params']:,} | "
        f"{f['forward_flops_per_image'] / 1e9:.3g} | {f['train_flops_per_image'] / 1e9:.3g} |"
    )
    target = f"{a['target_acc']:.0%}"
    print(
        f"\n| epoch s (median of {e['epochs'] - e['warmup_epochs_excluded']}) | images/s | "
        f"of {payload['flop_ceiling_dtype']} matmul ceiling | compile s | time to {target} (train / +eval) | best test acc (epoch, train s) |"
    )
    print("|---|---|---|---|---|---|")
    to_target = (
        f"{a['train_s_to_target']:.2f} s / {a['train_and_eval_s_to_target']:.2f} s "
        f"({a['epochs_to_target']} ep)"
        if a["reached"]
        else f"not reached in {e['epochs']} epochs"
    )
    print(
        f"| {e['median_epoch_train_s']:.3f} | {e['images_per_s']:,.0f} | "
        f"{_fmt(payload['flop_ceiling_fraction'], '.1%')} | {_fmt(e['compile_s'], '.1f')} | "
        f"{to_target} | {a['best_test_acc']:.2%} ({a['best_epoch']}, {a['train_s_to_best']:.2f} s) |"
    )
    sd = payload["seeds"]
    finals = ", ".join(f"{acc:.2%}" for acc in sd["final_test_acc"])
    print(
        f"\nFinal test accuracy by seed {sd['seeds']}: {finals}; median {sd['median_final_test_acc']:.2%}"
    )
    print("\nHost syncs in one epoch (the hot loops promise none per batch):\n")
    print(
        "| phase | batches | reads | copies to device | copies to host | data-dependent shapes | CUDA syncs |"
    )
    print("|---|---|---|---|---|---|---|")
    for phase in ("train", "evaluation"):
        h = payload["host_syncs_per_epoch"][phase]
        print(
            f"| {phase} | {h['batches']} | {h['reads']} | {h['copies_to_device']} | "
            f"{h['copies_to_host']} | {h['data_dependent_shapes']} | {_fmt(h['cuda_syncs'], 'd')} |"
        )
    print("\nPacked trials (each includes its per-epoch evaluation and checkpoints):\n")
    print("| concurrent trials | images/s total | images/s per trial | vs 1 trial |")
    print("|---|---|---|---|")
    for r in payload["packing"]:
        print(
            f"| {r['trials']} | {r['images_per_s_total']:,.0f} | "
            f"{r['images_per_s_per_trial_median']:,.0f} | {_fmt(r['speedup_vs_1'], '.2f', 'x')} |"
        )


def data_label(splits: Splits, root: str | None) -> str:
    if root is not None and "jpeg" in root.lower():
        return "CIFAR-10 (JPEG q75 copy)"
    return splits.provenance


# --- main -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-root", help="CIFAR-10 folder (required unless --smoke)")
    p.add_argument("--config", default="configs/cifar10_fastnet.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE")
    p.add_argument("--epochs", type=int, help="measured run's epochs (default: the config's)")
    p.add_argument("--warmup-epochs", type=int, default=2, help="left out of the epoch median")
    p.add_argument("--target-acc", type=float, default=0.94)
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--concurrency", default=None, help="trial counts to pack (default 1,2,4,8)")
    p.add_argument("--pack-epochs", type=int, default=3, help="timed epochs per packed trial")
    p.add_argument("--seeds", type=int, default=1, help="measured runs (seeds seed..seed+N-1)")
    p.add_argument("--smoke", action="store_true", help="tiny CPU run of every section")
    p.add_argument("--json", type=Path, help="output JSON (default bench/results/gpu.json)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    if not args.smoke and not args.data_root:
        print("--data-root is required (a CIFAR-10 folder); or run with --smoke", file=sys.stderr)
        return 2
    env = environment()  # before the run: the commit that is measured
    overrides = list(args.overrides)
    if args.data_root:
        overrides.append(f"dataset.root={args.data_root}")
    if args.epochs:
        overrides.append(f"epochs={args.epochs}")
    if args.compile:
        overrides.append("compile=true")
    try:
        config = load_config(args.config, overrides)
        if args.smoke:
            config = build_config(deep_merge(config.to_dict(), SMOKE_OVERRIDES))
        else:
            config = config.model_copy(update={"device": "cuda"})
        counts = [
            int(n) for n in (args.concurrency or ("1,2" if args.smoke else "1,2,4,8")).split(",")
        ]
        # Smoke runs on shared CI cores: one thread per process, because OpenMP threads that
        # spin-wait for a busy core can make a step many times slower than one thread.
        threads = torch.get_num_threads()
        if args.smoke:
            torch.set_num_threads(1)
        try:
            payload = run(config, args, counts)
        finally:
            torch.set_num_threads(threads)
    except UserError as err:  # config and data problems: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    payload["environment"] = env
    name = "gpu_smoke" if args.smoke else "gpu"
    print_tables(payload)
    print(f"-> {write_json(name, payload, args.json)}")
    return 0


def run(config: TrainConfig, args: argparse.Namespace, counts: Sequence[int]) -> dict[str, Any]:
    rt = resolve(config)
    splits = load_splits(config.dataset)
    size = int(splits.train.images.shape[1])
    print(f"ceilings on {rt.describe()} ...", flush=True)
    ceil = ceilings(rt.device, args.smoke, rt.dtype)
    flops = flops_per_image(config, len(splits.classes), size)
    warmup = 1 if args.smoke else args.warmup_epochs
    print(f"training {config.epochs} epochs (+1 cold) ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as work:
        full = full_train_splits(splits)
        epoch_stats, to_acc = epochs_and_accuracy(
            config, full, rt.device, warmup, args.target_acc, Path(work)
        )
        extra = range(config.seed + 1, config.seed + args.seeds)
        print(f"{len(extra)} more seeds ...", flush=True)
        seeds = seed_summary(
            to_acc, config.seed, more_seeds(config, full, rt.device, extra, Path(work))
        )
        print("host syncs (1 watched epoch) ...", flush=True)
        syncs = host_sync_audit(config, full, rt.device, Path(work))
    if rt.device.type == "cuda":
        torch.cuda.empty_cache()  # the packed trials get the card, less this process's context
    print(f"packing {counts} trials ...", flush=True)
    pack_epochs = 1 if args.smoke else args.pack_epochs
    pack = packing(config, counts, warmup_epochs=1, timed_epochs=pack_epochs)
    train_dtype = str(rt.dtype).removeprefix("torch.")
    ceiling_flops_per_s = ceil["matmul_tflops_by_dtype"][train_dtype] * 1e12
    fraction = flops["train_flops_per_image"] * epoch_stats["images_per_s"] / ceiling_flops_per_s
    m = config.model
    return {
        "smoke": bool(args.smoke),
        "label": SMOKE_LABEL if args.smoke else "measured on a GPU",
        "device_name": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "cpu",
        "autocast_dtype": train_dtype,
        "model": f"{m.name} width {m.width} depth {m.depth}",
        "data": data_label(splits, args.data_root),
        "config": config.to_dict(),
        "ceilings": ceil,
        "flops": flops,
        "epochs": epoch_stats,
        # Train FLOPs per image x images/s over the measured matmul rate of the dtype training
        # runs in (bf16 on Ampere+ GPUs with precision auto).
        "flop_ceiling_fraction": fraction if math.isfinite(fraction) else None,
        "flop_ceiling_dtype": train_dtype,
        "time_to_accuracy": to_acc,
        "seeds": seeds,
        "host_syncs_per_epoch": syncs,
        "packing": pack,
        "packing_setup": {
            "warmup_epochs": 1,
            "timed_epochs": pack_epochs,
            "note": "each trial is a full trainer run on the train/validation split in its own "
            "spawned process (CUDA memory capped to 1/n); its timed window, after a barrier, "
            "includes per-epoch evaluation and checkpoints, unlike the epochs section",
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
