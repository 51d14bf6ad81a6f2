"""What `searcher.reproducible` costs, and whether it reproduces: real searches, end to end.

    python -m bench.search.reproducible [--spec search_spaces/quick.yaml]
        [--data-root ../shared/datasets/cifar10-jpeg] [--seeds 0 1 2]
        [--modes async reproducible] [--json PATH]

For each searcher seed, the spec's search runs twice as shipped (asynchronous: TPE proposes
from whatever has ended, ASHA compares with whatever reached the rung first) and twice with
`searcher.reproducible: true` (lockstep batches of `max_concurrent_trials`), through
`tuner.stages.experiment.run`. The spec's `time_budget_s` and `searcher.patience` are dropped
(a reproducible search is bounded by `num_samples`), and the winner is retrained for one epoch
with one seed: only the search is measured. Per run: the search's wall time, and the slots'
use (the trials' summed training time over concurrency x wall). Per pair of runs with the same
seed and mode: whether the study's trials (configs, states, every epoch's value) and the
winner are identical. Writes bench/results/reproducible.json.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bench.support.env import environment, write_json
from bench.support.specs import read_spec

MODES = {"async": False, "reproducible": True}


def spec_for(raw: dict[str, Any], root: Path, seed: int, reproducible: bool) -> dict[str, Any]:
    spec = copy.deepcopy(raw)
    spec["storage_path"] = str(root)
    spec.pop("time_budget_s", None)
    spec.setdefault("searcher", {}).update(seed=seed, reproducible=reproducible)
    spec["searcher"].pop("patience", None)
    spec["retrain"] = {"seeds": 1, "epochs": 1, "refit": False}
    return spec


def one_run(raw: dict[str, Any]) -> dict[str, Any]:
    """One search end to end: its wall time, slot use, and what must reproduce."""
    from tuner.integrations.cluster import RayOptions
    from tuner.search.study import load_study
    from tuner.spec import validate_spec
    from tuner.stages import experiment

    spec = validate_spec(raw)
    outcome = experiment.run(spec, raw, RayOptions())
    results = experiment.results_dir_for(spec)
    trials = [
        [t.number, t.params, t.state.name, sorted(t.intermediate_values.items())]
        for t in load_study(results.path, spec.name).get_trials()
    ]
    summary = pd.read_csv(results.summary)
    wall = float(outcome.search_wall_s or float("nan"))
    slots = spec.max_concurrent_trials or 1
    return {
        "search_wall_s": wall,
        "slot_use": float(summary["train_s"].sum()) / (slots * wall),
        "trials": trials,
        "winner": yaml.safe_load(results.best_config().read_text()),
        "pruned": sum(1 for t in trials if t[2] == "PRUNED"),
    }


def measure(
    raw: dict[str, Any], seeds: Sequence[int], modes: Sequence[str] = tuple(MODES)
) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        for mode in modes:
            reproducible = MODES[mode]
            runs = []
            for repeat in range(2):
                with tempfile.TemporaryDirectory(prefix="bench-repro-") as tmp:
                    runs.append(one_run(spec_for(raw, Path(tmp), seed, reproducible)))
                print(
                    f"seed {seed} {mode} run {repeat + 1}: search {runs[-1]['search_wall_s']:.1f}"
                    f" s, slots used {runs[-1]['slot_use']:.0%}, {runs[-1]['pruned']} pruned",
                    flush=True,
                )
            same = runs[0]["trials"] == runs[1]["trials"]
            rows.append(
                {
                    "seed": seed,
                    "mode": mode,
                    "search_wall_s": [r["search_wall_s"] for r in runs],
                    "slot_use": [r["slot_use"] for r in runs],
                    "pruned": [r["pruned"] for r in runs],
                    "identical_trials": same,
                    "identical_winner": runs[0]["winner"] == runs[1]["winner"],
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| mode | search wall s (median of runs) | slots used | identical trials / winner |",
        "|---|---|---|---|",
    ]
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        walls = [w for r in mine for w in r["search_wall_s"]]
        use = [u for r in mine for u in r["slot_use"]]
        same = sum(r["identical_trials"] for r in mine)
        winner = sum(r["identical_winner"] for r in mine)
        lines.append(
            f"| {mode} | {statistics.median(walls):.1f} | {statistics.median(use):.0%} | "
            f"{same}/{len(mine)} seeds / {winner}/{len(mine)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.search.reproducible", description=__doc__.split("\n")[0]
    )
    p.add_argument("--spec", type=Path, default=Path("search_spaces/quick.yaml"))
    p.add_argument("--data-root", default="../shared/datasets/cifar10-jpeg")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    raw = read_spec(args.spec, args.data_root)
    import ray

    # One Ray for every run (each run joins it): its start is not part of any measurement.
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        rows = measure(raw, args.seeds, args.modes)
    finally:
        ray.shutdown()
    print(table(rows))
    payload = {"spec": str(args.spec), "rows": rows, "environment": environment()}
    print(f"-> {write_json('reproducible', payload, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
