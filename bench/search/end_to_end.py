"""ASHA against FIFO (every trial to max_t), same search, side by side in one run.

    python -m bench.search.end_to_end search_spaces/quick.yaml --data-root ../shared/datasets/cifar10-jpeg \
        [--set scheduler.max_t=8 ...]

Both searches use the same file, seed and searcher; only `scheduler.kind` differs. Printed and
saved (bench/results/search.json): epochs spent, search wall time, best validation accuracy,
retrained test accuracy (mean ± std over retrain seeds), and Tune's overhead: search wall time
against the trials' summed epoch time (train + validation) divided by the concurrency.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from bench.support.env import environment, write_json
from trainable.config import deep_merge, parse_overrides, read_yaml
from tuner.integrations.cluster import RayOptions
from tuner.spec import validate_spec
from tuner.stages import experiment


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("spec", type=Path)
    p.add_argument("--data-root")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    env = environment()  # before the run: the commit that is measured
    raw = deep_merge(read_yaml(args.spec), parse_overrides(args.overrides))
    if args.data_root:
        raw = deep_merge(raw, {"base": {"dataset": {"root": args.data_root}}})
    storage = tempfile.mkdtemp(prefix="bench-search-")
    import ray

    ray.init(include_dashboard=False, configure_logging=False)
    rows: list[dict[str, Any]] = []
    try:
        for kind in ("asha", "fifo"):
            spec_raw = deep_merge(
                raw,
                {
                    "name": f"{raw['name']}-{kind}",
                    "scheduler": {"kind": kind},
                    "storage_path": storage,
                },
            )
            spec = validate_spec(spec_raw)
            outcome = experiment.run(spec, spec_raw, RayOptions())
            trials = pd.read_parquet(experiment.results_dir_for(spec).path / "trials.parquet")
            concurrency = spec.max_concurrent_trials or 1
            ideal_s = trials["epoch_s"].sum() / concurrency
            rows.append(
                {
                    "scheduler": kind,
                    "trials": outcome.trials,
                    "status": outcome.trial_status_counts,
                    "epochs_spent": outcome.epochs_spent,
                    "search_wall_s": outcome.search_wall_s,
                    "summed_epoch_s_over_concurrency": ideal_s,
                    "tune_overhead": (outcome.search_wall_s or 0.0) / ideal_s - 1,
                    "best_val_acc": outcome.best_value,
                    "test_accuracy_mean": outcome.test_accuracy_mean,
                    "test_accuracy_std": outcome.test_accuracy_std,
                }
            )
    finally:
        ray.shutdown()
    asha, fifo = rows
    ratios = {
        "asha_epochs_share_of_fifo": asha["epochs_spent"] / fifo["epochs_spent"],
        "asha_wall_share_of_fifo": asha["search_wall_s"] / fifo["search_wall_s"],
        "best_val_gap_points": 100 * (fifo["best_val_acc"] - asha["best_val_acc"]),
        "test_gap_points": 100 * (fifo["test_accuracy_mean"] - asha["test_accuracy_mean"]),
    }
    print(
        "\n| scheduler | trials | epochs | search wall | Tune overhead | best val acc | retrained test acc |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['scheduler']} | {r['trials']} | {r['epochs_spent']} | {r['search_wall_s']:.0f} s | "
            f"{r['tune_overhead']:+.1%} | {r['best_val_acc']:.2%} | "
            f"{r['test_accuracy_mean']:.2%} ± {r['test_accuracy_std']:.2%} |"
        )
    print(
        f"\nASHA/FIFO epochs {ratios['asha_epochs_share_of_fifo']:.0%}, wall {ratios['asha_wall_share_of_fifo']:.0%}; "
        f"best-val gap {ratios['best_val_gap_points']:+.2f} points, test gap {ratios['test_gap_points']:+.2f} points"
    )
    data = (
        "CIFAR-10 (JPEG q75 copy)"
        if args.data_root and "jpeg" in args.data_root.lower()
        else args.data_root
    )
    payload = {
        "spec": str(args.spec),
        "overrides": args.overrides,
        "data": data,
        "environment": env,
        "rows": rows,
        "ratios": ratios,
        "results_storage": storage,
    }
    print(f"-> {write_json('search', payload, args.json)}")


if __name__ == "__main__":
    main()
