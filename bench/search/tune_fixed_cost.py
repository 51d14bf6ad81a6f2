"""What one Tune search costs before and after its epochs: the fixed part of the overhead.

    python -m bench.search.tune_fixed_cost [--repeats 3]

Times `Tuner.fit()` of one trial that reports 3 empty results, medians over `--repeats` fits
after a first, cold one (Tune's own imports): a trainable that imports nothing, and one that
imports torch and the trainer (as every real trial's fresh worker process does). Then the same
torch-importing fit right after Ray tasks imported torch in the pool's workers, which shows
whether pre-warmed workers would be reused for trial actors. Writes
bench/results/tune_fixed_cost.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.support.env import environment, write_json


def bare(config: dict[str, Any]) -> None:
    from ray import tune

    for i in range(3):
        tune.report({"step": i})


def importing(config: dict[str, Any]) -> None:
    import torch  # noqa: F401
    from ray import tune

    import trainable.training.engine  # noqa: F401

    for i in range(3):
        tune.report({"step": i})


def fit_s(fn: Callable[[dict[str, Any]], None]) -> float:
    from ray import tune

    t0 = time.perf_counter()
    run_config = tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="bench-fixed-"), verbose=0)
    tune.Tuner(fn, tune_config=tune.TuneConfig(num_samples=1), run_config=run_config).fit()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    env = environment()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        cold_s = fit_s(bare)
        rows = {
            "bare trainable": statistics.median(fit_s(bare) for _ in range(args.repeats)),
            "trainable importing torch + trainer": statistics.median(
                fit_s(importing) for _ in range(args.repeats)
            ),
        }

        @ray.remote(num_cpus=1)
        def warm() -> int:
            import torch  # noqa: F401

            import trainable.training.engine  # noqa: F401

            return 0

        ray.get([warm.remote() for _ in range(2)])
        rows["the same, after Ray tasks imported torch in the workers"] = fit_s(importing)
    finally:
        ray.shutdown()
    print(f"first (cold) fit of the bare trainable: {cold_s:.2f} s\n")
    print("| one-trial search (3 reports) | Tuner.fit() wall |\n|---|---|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} s |")
    payload = {"environment": env, "repeats": args.repeats, "cold_fit_s": cold_s, "fit_s": rows}
    print(f"-> {write_json('tune_fixed_cost', payload, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
