"""Where a search's time goes at short epochs: the trainer inside Tune against the same trainer
outside it, side by side, per epoch.

    python -m bench.search.tune_overhead                      # epochs of ~0.25 s, ~1 s and ~4 s
    python -m bench.search.tune_overhead --targets 1 --trials 2 --epochs 6
    python -m bench.search.tune_overhead --smoke              # tiny: checks the bench, not a result

For each target epoch length the synthetic training set is sized (from a calibration run of
the same model) so that one epoch, training plus validation, takes about that long on one
thread. Then, with nothing else running:

- outside: `train()` in this process, one thread, `--trials` runs of `--epochs` epochs;
- inside: a Tune search of `--trials` trials with the same fixed config (FIFO, one trial at a
  time on one CPU, the search's own adapter, checkpoint and storage settings), so every second
  not spent in an epoch is overhead rather than contention.

Inside Tune runs twice: checkpoints every epoch (`checkpoint_interval_s: 0`, the behaviour
before the checkpoint policy) and the search's default policy (rungs, last epoch, every 30 s).
Per epoch (medians over every epoch after each run's first): training, evaluation, checkpoint
save (the trainer's `checkpoint_s`), report + checkpoint copy into Tune's storage (Ray's
`time_this_iter_s` minus the epoch and its save), and per run the trial start-up (the first
epoch's extra time) and the Tune/driver remainder (search wall minus the trials' own time).
Overhead is search wall / outside wall - 1. Writes bench/results/tune_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.support.env import environment, write_json
from trainable.config import TrainConfig, build_config, deep_merge
from trainable.training.engine import train

SMOKE_LABEL = "SMOKE TEST (tiny sizes): checks the bench runs; the figures mean nothing"
# smallnet's checkpoint is small; fastnet's (~24 MB with its optimizer state) is the size the
# issue measured, where a write every epoch costs most.
MODELS: dict[str, dict[str, Any]] = {
    "smallnet": {"name": "smallnet", "width": 16, "depth": 3},
    "fastnet": {"name": "fastnet", "width": 64, "depth": 2},
}


def base(train_size: int, model: str) -> dict[str, Any]:
    return {
        "dataset": {
            "name": "synthetic",
            "num_classes": 10,
            "image_size": 32,
            "synthetic_train_size": train_size,
            "synthetic_test_size": 100,
            "val_fraction": 0.2,
        },
        "model": MODELS[model],
        "batch_size": 128,
        "device": "cpu",
        "precision": "fp32",
        "loader": {"kind": "device"},
    }


def config(train_size: int, epochs: int, model: str) -> TrainConfig:
    return build_config(deep_merge(base(train_size, model), {"epochs": epochs}))


def calibrate(target_s: float, probe: int, model: str) -> int:
    """Training-set size for epochs of about `target_s` (train + validation, one thread)."""
    with tempfile.TemporaryDirectory() as out:
        reports: list[dict[str, float]] = []
        train(config(probe, 3, model), out, report=lambda m, _d: reports.append(m))
    per_image_s = statistics.median(m["epoch_s"] for m in reports[1:]) / probe
    return max(64, int(target_s / per_image_s))


def outside(train_size: int, epochs: int, trials: int, model: str) -> dict[str, Any]:
    rows: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for _ in range(trials):
        with tempfile.TemporaryDirectory() as out:
            train(config(train_size, epochs, model), out, report=lambda m, _d: rows.append(dict(m)))
    return {"wall_s": time.perf_counter() - t0, "epochs": pd.DataFrame(rows)}


def inside(
    train_size: int, epochs: int, trials: int, storage: str, interval_s: float, model: str
) -> dict[str, Any]:
    """A search over a one-value space: every trial the same config, one at a time."""
    import ray

    from trainable.data.datasets import load_splits
    from tuner.results.layout import ResultsDir
    from tuner.results.tables import trial_rows
    from tuner.search.run import SearchRun
    from tuner.spec import validate_spec

    raw = {
        "name": f"overhead-{train_size}-{interval_s:g}",
        "base": base(train_size, model),
        "space": {"label_smoothing": {"type": "choice", "values": [0.0]}},
        "scheduler": {"kind": "fifo", "max_t": epochs, "grace_period": 1},
        "num_samples": trials,
        "max_concurrent_trials": 1,
        "resources": {"cpus": 1, "gpu": 0},
        "storage_path": storage,
        "checkpoint_interval_s": interval_s,
    }
    spec = validate_spec(raw)
    results = ResultsDir(Path(storage) / spec.name)
    results.path.mkdir(parents=True)
    search = SearchRun(spec, results, ray.put(load_splits(spec.base_config().dataset)))
    t0 = time.perf_counter()
    grid = search.fit(callbacks=[])
    return {"wall_s": time.perf_counter() - t0, "epochs": trial_rows(grid)}


def breakdown(epochs: pd.DataFrame, in_tune: bool) -> dict[str, float]:
    later = epochs[epochs["epoch"] > 1]
    med = later.median(numeric_only=True)
    out = {
        "train_s": float(med["train_s"]),
        "evaluation_s": float((later["epoch_s"] - later["train_s"]).median()),
        "checkpoint_save_s": float(med["checkpoint_s"]),
    }
    if in_tune:
        rest = later["time_this_iter_s"] - later["epoch_s"] - later["checkpoint_s"]
        first = epochs[epochs["epoch"] == 1]
        startup = first["time_this_iter_s"] - first["epoch_s"] - first["checkpoint_s"]
        out |= {
            "report_and_copy_s": float(rest.median()),
            "trial_startup_s": float(startup.median()),
        }
    return out


# checkpoint_interval_s: 0 writes every epoch (the old behaviour), 30 is the search's default
POLICIES = {"every epoch": 0.0, "policy (30 s)": 30.0}


def measure(target_s: float, args: argparse.Namespace, storage: str) -> dict[str, Any]:
    size = calibrate(target_s, args.probe, args.model)
    out = outside(size, args.epochs, args.trials, args.model)
    row: dict[str, Any] = {
        "target_epoch_s": target_s,
        "train_size": size,
        "epoch_s_outside": float(out["epochs"]["epoch_s"].median()),
        "outside_wall_s": out["wall_s"],
        "outside": breakdown(out["epochs"], in_tune=False),
    }
    for name, interval_s in POLICIES.items():
        ins = inside(size, args.epochs, args.trials, storage, interval_s, args.model)
        trials_s = ins["epochs"].groupby("trial_id")["time_total_s"].max().sum()
        row[name] = {
            "wall_s": ins["wall_s"],
            "overhead": ins["wall_s"] / out["wall_s"] - 1,
            "tune_driver_s": float(ins["wall_s"] - trials_s),
            **breakdown(ins["epochs"], in_tune=True),
        }
    print(
        f"[target {target_s:g} s] {size} images, epoch {row['epoch_s_outside']:.2f} s; overhead "
        + ", ".join(f"{name} {row[name]['overhead']:+.1%}" for name in POLICIES),
        flush=True,
    )
    return row


def print_table(rows: list[dict[str, Any]], epochs: int, trials: int) -> None:
    print(
        f"\n{trials} runs x {epochs} epochs per side, one at a time; per-epoch medians (epochs 2+)"
    )
    print(
        "| epoch (outside) | checkpoints | outside wall | inside wall | overhead | train "
        "| evaluation | checkpoint save | report + copy | trial start-up | Tune/driver (run) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for name in POLICIES:
            i = r[name]
            print(
                f"| {r['epoch_s_outside']:.2f} s | {name} | {r['outside_wall_s']:.1f} s "
                f"| {i['wall_s']:.1f} s | {i['overhead']:+.1%} | {i['train_s']:.3f} s "
                f"| {i['evaluation_s']:.3f} s | {i['checkpoint_save_s']:.3f} s "
                f"| {i['report_and_copy_s']:.3f} s | {i['trial_startup_s']:.2f} s "
                f"| {i['tune_driver_s']:.1f} s |"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--targets", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--probe", type=int, default=2048, help="calibration set size")
    p.add_argument("--model", choices=list(MODELS), default="smallnet")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.smoke:
        args.targets, args.trials, args.epochs, args.probe = [0.05], 2, 3, 256
        print(SMOKE_LABEL)
    torch.set_num_threads(1)  # a trial gets one CPU; the outside runs get the same
    env = environment()
    import ray

    started = not ray.is_initialized()  # a test's session may hold one already
    if started:
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    storage = tempfile.mkdtemp(prefix="bench-tune-overhead-")
    try:
        rows = [measure(t, args, storage) for t in args.targets]
    finally:
        if started:
            ray.shutdown()
    print_table(rows, args.epochs, args.trials)
    payload = {
        "label": SMOKE_LABEL if args.smoke else None,
        "policies": POLICIES,
        "model": MODELS[args.model],
        "trials": args.trials,
        "epochs": args.epochs,
        "environment": env,
        "rows": rows,
    }
    print(f"-> {write_json('tune_overhead', payload, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
