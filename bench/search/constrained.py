"""Search under deployment constraints on NAS-Bench-201 (#27): does the shipped searcher,
told each trial's violations, find better models that meet the limits than random search?

    python -m bench.search.constrained [--tables nb201-cifar10 ...] [--seeds 20] [--evals 100]
        [--concurrency 8] [--quantile 0.3] [--json PATH]

The table's cells carry their latency and size, so a lookup reports `latency_ms` and
`params_m` beside the validation accuracy, as a trainer with `measure_cost` would. The limits
are each column's `--quantile` over all cells (so about that share of cells meets each), given
as a search spec's `constraints`. Arms: `tpe` (the shipped searcher through Ray Tune at
`--concurrency`, its sampler given the violations) and `random` (plain Optuna's random search:
its proposals do not depend on the path). Per search: the true (seed-mean) accuracy of the
best *feasible* config observed, as regret against the best feasible cell, and the
hypervolume of the observed feasible points in (accuracy up, latency down) against the whole
table's feasible front, as a fraction of it (1 is the whole front found).
"""

from __future__ import annotations

import argparse
import statistics
import time
import zlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from bench.search import lookup
from bench.search.tabular import mean_ci, ray_search, spec_for
from bench.search.tabular_report import difference
from bench.support.env import environment, write_json
from tuner import compat
from tuner.results.constraints import is_feasible
from tuner.spec import Bound

NB201 = [t for t in lookup.TABLES if t.startswith("nb201")]


@cache
def cells(table: str) -> list[dict[str, Any]]:
    """Every cell: its config, true accuracy and costs."""
    b = lookup.bench_of(table)
    ops = b.search_space["Op0"]
    out = []
    for key, v in b._dataset.items():
        config = {f"Op{i}": ops[int(c)] for i, c in enumerate(key)}
        out.append({"config": config, "val_acc": float(np.mean(v["val_acc"])), **lookup.costs(v)})
    return out


def limits(table: str, quantile: float) -> dict[str, Bound]:
    return {
        k: Bound(max=float(np.quantile([c[k] for c in cells(table)], quantile)))
        for k in lookup.COSTS
    }


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Of (accuracy, latency) points, accuracy up and latency down, from `ref` (worst corner)."""
    if not points:
        return 0.0
    # Optuna minimises: accuracy negated; its hypervolume routine is private (tuner.compat).
    arr = np.asarray([(-a, lat) for a, lat in points], dtype=float)
    return compat.hypervolume(arr, np.asarray([-ref[0], ref[1]], dtype=float))


def score(table: str, bounds: dict[str, Bound], configs: Sequence[dict[str, Any]]) -> dict:
    """Regret of the best feasible config among `configs` and their hypervolume fraction."""
    by_key = {tuple(c["config"].values()): c for c in cells(table)}
    feasible_cells = [c for c in cells(table) if is_feasible(bounds, c)]
    best = max(c["val_acc"] for c in feasible_cells)
    worst = min(c["val_acc"] for c in cells(table))
    ref = (worst, max(c["latency_ms"] for c in cells(table)))
    found = [by_key[tuple(c.values())] for c in configs]
    ok = [c for c in found if is_feasible(bounds, c)]
    table_hv = hypervolume([(c["val_acc"], c["latency_ms"]) for c in feasible_cells], ref)
    return {
        "feasible_found": len(ok),
        "regret": (best - max(c["val_acc"] for c in ok)) / (best - worst) if ok else 1.0,
        "hypervolume": hypervolume([(c["val_acc"], c["latency_ms"]) for c in ok], ref) / table_hv,
    }


def run_tpe(table: str, bounds: dict[str, Bound], seed: int, evals: int, conc: int) -> list:
    spec = spec_for(table, "tpe", seed, evals, conc).model_copy(update={"constraints": bounds})
    trials, _ = ray_search(spec, table, costs=True)
    return [lookup.decode(table, t.params) for t in trials if t.value is not None]


def run_random(table: str, seed: int, evals: int) -> list:
    import optuna

    from tuner.search.study import distributions

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    space = distributions(lookup.space_of(table))
    out = []
    for i in range(evals):
        trial = study.ask(space)
        config = lookup.decode(table, trial.params)
        study.tell(trial, lookup.observe(table, config, zlib.crc32(f"{seed}-{i}".encode())))
        out.append(config)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.search.constrained", description=__doc__.split("\n")[0]
    )
    p.add_argument("--tables", nargs="+", default=NB201, choices=NB201)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--evals", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--quantile", type=float, default=0.3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    import ray

    env, rows = environment(), []
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        for table in args.tables:
            bounds = limits(table, args.quantile)
            for arm in ("tpe", "random"):
                t0, scores = time.perf_counter(), []
                for seed in range(args.seeds):
                    if arm == "tpe":
                        configs = run_tpe(table, bounds, seed, args.evals, args.concurrency)
                    else:
                        configs = run_random(table, seed, args.evals)
                    scores.append(score(table, bounds, configs))
                rows.append(_row(table, arm, bounds, scores, time.perf_counter() - t0))
                print(_line(rows[-1]), flush=True)
    finally:
        ray.shutdown()
    for table in args.tables:
        tpe, rnd = (next(r for r in rows if r["table"] == table and r["arm"] == a)
                    for a in ("tpe", "random"))  # fmt: skip
        for key in ("regret", "hypervolume"):
            d, lo, hi = difference(tpe[key], rnd[key])
            print(f"{table}: tpe - random {key} {d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    payload = {"args": vars(args) | {"json": str(args.json)}, "rows": rows, "environment": env}
    print(f"-> {write_json('constrained', payload, args.json)}")
    return 0


def _row(table: str, arm: str, bounds: dict[str, Bound], scores: list[dict], wall: float) -> dict:
    return {
        "table": table,
        "arm": arm,
        "limits": {k: b.max for k, b in bounds.items()},
        "regret": [s["regret"] for s in scores],
        "hypervolume": [s["hypervolume"] for s in scores],
        "feasible_found": [s["feasible_found"] for s in scores],
        "regret_mean_ci": mean_ci([s["regret"] for s in scores]),
        "hypervolume_mean_ci": mean_ci([s["hypervolume"] for s in scores]),
        "wall_s": wall,
    }


def _line(r: dict) -> str:
    (rm, rh), (hm, hh) = r["regret_mean_ci"], r["hypervolume_mean_ci"]
    found = statistics.fmean(r["feasible_found"])
    return (f"{r['table']} {r['arm']}: feasible regret {rm:.4f} ± {rh:.4f}, hypervolume "
            f"{hm:.3f} ± {hh:.3f}, {found:.0f} feasible configs found")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
