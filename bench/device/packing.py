"""Packed trials: 1, 2, 4, 8 concurrent trainer runs on one GPU, as a search packs them.

    python -m bench.device.packing --data-root DATA [--config C] [--set K=V ...] \
        [--concurrency 1,2,4,8] [--epochs 2] [--json PATH]

By default small trials, where packing should pay (a search's trials that leave the card
idle: `configs/cifar10_smallnet.yaml` at width 24, batch 512, data on the GPU).

Each trial is a normal `engine.train` run (train/validation split, evaluation and checkpoints
every epoch) in its own spawned process with its CUDA memory capped to 1/n of the card, as
`tuner.search.adapter.cap_gpu_memory` does for a 1/n-GPU trial; all trials are timed from a barrier
after a warm-up epoch to the last trial's end. Part of `bench/device/gpu.py` (issue #6).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import queue
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from trainable.config import TrainConfig, build_config, load_config
from trainable.data.datasets import load_splits
from trainable.training import engine


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
            # What a 1/n-GPU trial gets in a search (tuner.search.adapter.cap_gpu_memory).
            torch.cuda.set_per_process_memory_fraction(1 / n_trials, 0)
        torch.set_num_threads(cpu_threads)
        splits = load_splits(config.dataset)
        images = 0
        window: dict[str, float] = {}

        def report(m: dict[str, float], _ckpt: Path | None) -> None:
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


SMALL_TRIAL = ("model.width=24", "batch_size=512", "loader.kind=device", "device=cuda")


def main(argv: Sequence[str] | None = None) -> int:
    from bench.support.env import environment, write_json

    p = argparse.ArgumentParser(
        prog="python -m bench.device.packing", description=__doc__.split("\n")[0]
    )
    p.add_argument("--data-root", required=True)
    p.add_argument("--config", default="configs/cifar10_smallnet.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE")
    p.add_argument("--concurrency", default="1,2,4,8")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per trial (after 1 warm-up)")
    p.add_argument("--json", type=Path, help="output JSON (default bench/results/packing.json)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU: packing trials on one card needs one", file=sys.stderr)
        return 2
    overrides = [*SMALL_TRIAL, f"dataset.root={args.data_root}", *args.overrides]
    config = load_config(args.config, overrides)
    counts = [int(n) for n in args.concurrency.split(",")]
    rows = packing(config, counts, warmup_epochs=1, timed_epochs=args.epochs)
    for r in rows:
        print(
            f"{r['trials']} trials: {r['images_per_s_total']:,.0f} img/s, x{r['speedup_vs_1']:.2f}"
        )
    payload = {"device_name": torch.cuda.get_device_name(0), "overrides": overrides,
               "config": args.config, "rows": rows, "environment": environment()}  # fmt: skip
    print(f"-> {write_json('packing', payload, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
