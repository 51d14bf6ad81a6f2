"""Where a real search's time goes besides its epochs: `quick.yaml`, end to end (#27 item 3).

    python -m bench.search.trial_setup [--spec search_spaces/quick.yaml]
        [--data-root ../shared/datasets/cifar10-jpeg] [--seeds 0 1] [--json PATH]

Each searcher seed runs the spec's search as shipped (asynchronous, its ASHA, reused trial
processes) through `tuner.stages.experiment.run`, without its `time_budget_s` and patience (so
every run trains the same number of trials), the winner retrained for one epoch with one seed
(not measured). From the search's `trials.parquet`, per run:

- **overhead** (the issue's definition): search wall time over the trials' summed epochs
  (`epoch_s`: training and validation) per slot, minus 1;
- **set-up per trial**: the first report's time since the trial started (Tune's
  `time_this_iter_s`) minus its epoch and checkpoint, less the same remainder of the trial's
  later epochs (the report itself): model build, data statistics, loaders, optimizer;
- **per later epoch**: that remainder, the cost of a report and its checkpoint.

Writes bench/results/trial_setup.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.search.reproducible import spec_for
from bench.support.env import environment, write_json
from bench.support.specs import read_spec


def breakdown(rows: pd.DataFrame, wall_s: float, slots: int) -> dict[str, Any]:
    """The overhead figures of one search from its reported rows (trials.parquet)."""
    rest = rows["time_this_iter_s"] - rows["epoch_s"] - rows["checkpoint_s"].fillna(0.0)
    first = rows["training_iteration"] == 1
    later = float(rest[~first].median()) if (~first).any() else 0.0
    setup = (rest[first] - later).tolist()
    return {
        "search_wall_s": wall_s,
        "trials": int(first.sum()),
        "epochs": len(rows),
        "epoch_s_sum": float(rows["epoch_s"].sum()),
        "overhead": wall_s / (float(rows["epoch_s"].sum()) / slots) - 1,
        "setup_s": setup,
        "setup_s_median": statistics.median(setup),
        "per_later_epoch_s": later,
    }


def one_run(raw: dict[str, Any]) -> dict[str, Any]:
    from tuner.integrations.cluster import RayOptions
    from tuner.spec import validate_spec
    from tuner.stages import experiment

    spec = validate_spec(raw)
    outcome = experiment.run(spec, raw, RayOptions())
    rows = pd.read_parquet(experiment.results_dir_for(spec).path / "trials.parquet")
    return breakdown(rows, float(outcome.search_wall_s or "nan"), spec.max_concurrent_trials or 1)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.search.trial_setup", description=__doc__.split("\n")[0]
    )
    p.add_argument("--spec", type=Path, default=Path("search_spaces/quick.yaml"))
    p.add_argument("--data-root", default="../shared/datasets/cifar10-jpeg")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    raw = read_spec(args.spec, args.data_root)
    import ray

    # One Ray for every run (each run joins it): its start is not part of any measurement.
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    runs = []
    try:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory(prefix="bench-setup-") as tmp:
                run = one_run(spec_for(raw, Path(tmp), seed, reproducible=False))
            runs.append({"seed": seed} | run)
            print(
                f"seed {seed}: search {run['search_wall_s']:.1f} s, {run['trials']} trials, "
                f"{run['epochs']} epochs ({run['epoch_s_sum']:.1f} s), overhead "
                f"{run['overhead']:+.1%}, set-up a trial {run['setup_s_median']:.2f} s (median), "
                f"{run['per_later_epoch_s']:.3f} s per later epoch",
                flush=True,
            )
    finally:
        ray.shutdown()
    payload = {"spec": str(args.spec), "runs": runs, "environment": environment()}
    print(f"-> {write_json('trial_setup', payload, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
