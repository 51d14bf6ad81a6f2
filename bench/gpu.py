"""GPU speed in one run: the two ceilings, FLOPs per image, epoch time, time-to-accuracy, packing.

    python bench/gpu.py --data-root ../shared/datasets/cifar10-jpeg [--compile] [--json PATH]
    python bench/gpu.py --smoke      # tiny, on the CPU: exercises every section; not a result

On one CUDA GPU (issue #6):
1. Ceilings: the device's bf16 matmul rate (square matmuls, median, TFLOP/s) and its copy
   bandwidth (device-to-device `copy_`, read + write bytes, median, GB/s).
2. FLOPs of the model per image (torch.utils.flop_counter: convolutions and matmuls, 2 per
   multiply-add), forward and forward + backward.
3. Epochs: the trainer's own `train()` on the whole 50k training set with the test split as
   its per-epoch evaluation; each epoch's training phase (the trainer's `_train_epoch`) is timed
   with CUDA events. A 1-epoch run in the same process goes first so CUDA/cuDNN start-up is
   not in the numbers; the measured run's first `--warmup-epochs` are left out of the median.
   Images/s and the fraction of the bf16 ceiling (train FLOPs/img x img/s / matmul rate).
   With `--compile`, the compile time is reported apart (the trainer's `compile_s` metric).
4. Time to `--target-acc` (0.94) test accuracy, or to the best reached: cumulative training
   time of the measured run, with and without the per-epoch test evaluation.
5. Packing: 1, 2, 4 and 8 concurrent trials (separate spawned processes, each with its CUDA
   memory capped to 1/n of the card, each a normal trainer run with evaluation and
   checkpoints), aligned by a barrier after a warm-up epoch; total and per-trial images/s.

Accuracies on the JPEG copy of CIFAR-10 are labelled as such (lossy, quality 75: a little below
official CIFAR-10; see its PROVENANCE.md). Prints tables and writes bench/results/gpu.json
(--smoke: bench/results/gpu_smoke.json). Every figure printed is measured in this run; smoke
figures are CPU timings of a tiny model and are labelled as such, not GPU results.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing as mp
import queue
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_json

from trainable import engine
from trainable.config import TrainConfig, build_config, deep_merge, load_config
from trainable.data import ArrayDataset, Splits, load_splits
from trainable.errors import UserError
from trainable.models import build_model
from trainable.runtime import resolve

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


# --- timing ---------------------------------------------------------------------------------


def time_s(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds `fn` takes: CUDA events on a GPU (device time, no host jitter), else a clock."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_s(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(time_s(fn, device) for _ in range(reps))


# --- 1. ceilings ----------------------------------------------------------------------------


def matmul_s(n: int, device: torch.device, reps: int, dtype: torch.dtype) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return median_s(lambda: torch.matmul(a, b, out=out), device, reps)


def copy_s(n_bytes: int, device: torch.device, reps: int) -> float:
    src = torch.empty(n_bytes, device=device, dtype=torch.uint8).random_()
    dst = torch.empty_like(src)
    return median_s(lambda: dst.copy_(src), device, reps)


def ceilings(device: torch.device, smoke: bool, train_dtype: torch.dtype) -> dict[str, Any]:
    """The device's bf16 matmul rate and copy bandwidth: the two roofs the trainer runs under.

    When training runs in another dtype (fp32 on CPUs without native bf16, fp16 on pre-Ampere
    GPUs) that dtype's matmul rate is measured too: the ceiling the trainer is held against.
    """
    n = 256 if smoke else 8192  # 8192^3: ~1 TFLOP per matmul, long enough to time cleanly
    n_bytes = (16 if smoke else 1024) * 2**20
    reps = 5 if smoke else 50
    mm_s = matmul_s(n, device, reps, torch.bfloat16)
    tflops = {"bfloat16": 2 * n**3 / mm_s / 1e12}
    if train_dtype != torch.bfloat16:
        other_s = matmul_s(n, device, reps, train_dtype)
        tflops[str(train_dtype).removeprefix("torch.")] = 2 * n**3 / other_s / 1e12
    cp_s = copy_s(n_bytes, device, reps)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "matmul_bf16_tflops": tflops["bfloat16"],
        "matmul_tflops_by_dtype": tflops,
        "matmul_n": n,
        "matmul_median_s": mm_s,
        # A copy reads and writes every byte: 2x the buffer crosses the memory bus.
        "copy_gb_per_s": 2 * n_bytes / cp_s / 1e9,
        "copy_buffer_bytes": n_bytes,
        "copy_median_s": cp_s,
        "copy_definition": "device-to-device copy_, (read + write bytes) / median time",
        "reps": reps,
    }


# --- 2. FLOPs per image ---------------------------------------------------------------------


def flops_per_image(config: TrainConfig, num_classes: int, image_size: int) -> dict[str, Any]:
    """Forward and forward + backward FLOPs of one training batch, per image."""
    rt = resolve(config)
    m = config.model
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    net = build_model(m.name, num_classes, m.width, m.depth, m.dropout)
    net = net.to(rt.device, memory_format=fmt).train()  # type: ignore[call-overload]
    batch = min(config.batch_size, 64)  # FLOPs are linear in the batch; a small one suffices
    x = torch.randn(batch, 3, image_size, image_size, device=rt.device)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, num_classes, (batch,), device=rt.device)
    with FlopCounterMode(display=False) as fwd, rt.autocast():
        logits = net(x)
    with FlopCounterMode(display=False) as bwd:
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
    forward, backward = fwd.get_total_flops(), bwd.get_total_flops()
    return {
        "params": sum(p.numel() for p in net.parameters()),
        "forward_flops_per_image": forward / batch,
        "train_flops_per_image": (forward + backward) / batch,
        "counted_batch": batch,
        "counter": "torch.utils.flop_counter: conv and matmul only, 2 FLOPs per multiply-add",
    }


# --- 3 and 4. epochs and time to accuracy ---------------------------------------------------


@contextlib.contextmanager
def timed_train_epochs(device: torch.device) -> Iterator[list[tuple[float, int]]]:
    """Time every call of the trainer's own epoch loop inside `engine.train`.

    Wrapping `engine._train_epoch` (looked up by `_fit` at call time) measures the product's
    exact hot loop, optimiser and scheduler included, with CUDA events around each call.
    Yields a list that fills with (seconds, images) per epoch.
    """
    if not hasattr(engine, "_train_epoch"):
        raise RuntimeError("trainable.engine._train_epoch is gone: update bench/gpu.py's timer")
    original = engine._train_epoch
    records: list[tuple[float, int]] = []

    def timed(*args: Any, **kwargs: Any) -> tuple[float, float, bool, int, float]:
        result: list[tuple[float, float, bool, int, float]] = []
        seconds = time_s(lambda: result.append(original(*args, **kwargs)), device)
        records.append((seconds, result[0][3]))
        return result[0]

    with mock.patch.object(engine, "_train_epoch", timed):
        yield records


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
    with timed_train_epochs(device) as epochs:
        engine.train(config, out_dir, data=data, report=lambda m, _d: history.append(dict(m)))
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


# --- 5. packing -----------------------------------------------------------------------------


def _pack_worker(
    rank: int,
    n_trials: int,
    config_dict: dict[str, Any],
    warmup_epochs: int,
    cpu_threads: int,
    barrier: Any,
    results: Any,
) -> None:
    """One trial in its own process: capped memory, a normal trainer run, timed after warm-up."""
    try:
        config = build_config(config_dict)
        if torch.cuda.is_available():
            # What a 1/n-GPU trial gets in a search (tuner.adapter.cap_gpu_memory).
            torch.cuda.set_per_process_memory_fraction(1 / n_trials, 0)
        torch.set_num_threads(cpu_threads)
        splits = load_splits(config.dataset)
        images = 0
        window: dict[str, float] = {}

        def report(m: dict[str, float], _ckpt: Path) -> None:
            nonlocal images
            epoch = int(m["epoch"])
            if epoch == warmup_epochs:
                barrier.wait(timeout=900)  # every trial warm before the clock starts
                window["start"] = time.monotonic()  # CLOCK_MONOTONIC: shared by processes
            elif epoch > warmup_epochs:
                images += round(m["images_per_s"] * m["train_s"])
                window["end"] = time.monotonic()

        # The validation report files (pandas, matplotlib) come after the timed window; skipping
        # them only shortens each trial's exit.
        no_report_files: contextlib.AbstractContextManager[Any] = (
            mock.patch.object(engine, "write_metrics", lambda *_a, **_k: {})
            if hasattr(engine, "write_metrics")
            else contextlib.nullcontext()
        )
        with tempfile.TemporaryDirectory(prefix=f"bench-pack-{rank}-") as out, no_report_files:
            engine.train(config, out, data=splits, report=report)
        elapsed_s = window["end"] - window["start"]
        results.put(("ok", rank, images, window["start"], window["end"], images / elapsed_s))
    except BaseException as err:  # reported to the parent, which fails the whole measurement
        results.put(("error", rank, f"{type(err).__name__}: {err}", traceback.format_exc()))
        with contextlib.suppress(Exception):
            barrier.abort()


def packed_throughput(
    config: TrainConfig, n_trials: int, warmup_epochs: int, cpu_threads: int, timeout_s: float
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")  # CUDA cannot be forked; each trial is a fresh process
    barrier = ctx.Barrier(n_trials)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_pack_worker,
            args=(rank, n_trials, config.to_dict(), warmup_epochs, cpu_threads, barrier, results),
            daemon=True,
        )
        for rank in range(n_trials)
    ]
    for p in procs:
        p.start()
    rows: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(rows) < n_trials:
            try:
                rows.append(results.get(timeout=1.0))
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    why = f"exit code {dead[0].exitcode}" if dead else f"over {timeout_s:.0f} s"
                    raise RuntimeError(f"packing with {n_trials} trials failed: {why}") from None
            if rows[-1:] and rows[-1][0] == "error":
                _, rank, msg, tb = rows[-1]
                raise RuntimeError(f"packed trial {rank} of {n_trials} failed: {msg}\n{tb}")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    start = min(r[3] for r in rows)
    end = max(r[4] for r in rows)
    total_images = sum(r[2] for r in rows)
    return {
        "trials": n_trials,
        "memory_fraction": 1 / n_trials,
        "window_s": end - start,
        "images": total_images,
        "images_per_s_total": total_images / (end - start),
        "images_per_s_per_trial_median": statistics.median(r[5] for r in rows),
    }


def packing(
    config: TrainConfig, counts: Sequence[int], warmup_epochs: int, timed_epochs: int
) -> list[dict[str, Any]]:
    # Trials as a search runs them: the train/validation split, eval and checkpoints included.
    trial = config.model_copy(update={"epochs": warmup_epochs + timed_epochs})
    threads = torch.get_num_threads()
    rows = [
        packed_throughput(trial, n, warmup_epochs, max(1, threads // n), timeout_s=900)
        for n in counts
    ]
    base = rows[0]["images_per_s_total"] if rows and rows[0]["trials"] == 1 else None
    for row in rows:
        row["speedup_vs_1"] = row["images_per_s_total"] / base if base else None
    return rows


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
        epoch_stats, to_acc = epochs_and_accuracy(
            config, full_train_splits(splits), rt.device, warmup, args.target_acc, Path(work)
        )
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
