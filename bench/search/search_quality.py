"""Is the search any good? Repeated searches per arm at equal epoch budgets, side by side.

    python -m bench.search.search_quality bench/specs/search_quality.yaml \
        --data-root ../shared/datasets/cifar10-jpeg --seeds 10 --budget-epochs 32 --retrain 3

Arms (same space, objective, concurrency and epoch budget; only the searcher or scheduler
differs): random + ASHA, Ray's stock OptunaSearch (TPE, ASHA-stopped trials told as COMPLETE)
+ ASHA, ours (TPE, stopped trials told as PRUNED) + ASHA, ours + FIFO, GP + ASHA. Seeds run
outer and arms inner, so slow drift of the machine hits every arm alike.

Per search: the anytime curve (best validation accuracy so far against epochs spent and
against wall time). Out: bench/results/search_quality.json (every search), .png (mean and
95% interval over seeds), and a table of best-at-budget per arm with the retrained test
accuracy of each arm's winner for the first `--retrain` seeds (the production retrain path).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray.tune.stopper import Stopper

from bench.support.env import environment, write_json
from trainable.config import deep_merge, parse_overrides, read_yaml
from tuner.results.layout import ResultsDir
from tuner.spec import SearchSpec, validate_spec

# arm -> (searcher.kind, scheduler.kind, Ray's stock OptunaSearch instead of ours)
ARMS: dict[str, tuple[str, str, bool]] = {
    "random+ASHA": ("random", "asha", False),
    "ray-OptunaSearch(TPE)+ASHA": ("tpe", "asha", True),
    "ours(TPE)+ASHA": ("tpe", "asha", False),
    "ours(TPE)+FIFO": ("tpe", "fifo", False),
    "GP+ASHA": ("gp", "asha", False),
}


class EpochBudget(Stopper):
    """Ends the whole search once its trials have reported `budget` epochs in all."""

    def __init__(self, budget: int) -> None:
        self.budget, self.seen = budget, 0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.seen += 1
        return False

    def stop_all(self) -> bool:
        return self.seen >= self.budget


def arm_spec(raw: dict[str, Any], arm: str, seed: int, storage: str) -> SearchSpec:
    kind, scheduler, _ = ARMS[arm]
    startup = {} if kind == "random" else {"n_startup_trials": raw["searcher"]["n_startup_trials"]}
    merged = deep_merge(raw, {"scheduler": {"kind": scheduler}, "storage_path": storage})
    merged["name"] = f"s{seed}-{kind}-{scheduler}-{'stock' if ARMS[arm][2] else 'ours'}"
    merged["searcher"] = {"kind": kind, "seed": seed, **startup}
    return validate_spec(merged)


def stock_optuna(spec: SearchSpec, results: ResultsDir, warm: Any) -> Any:
    from ray.tune.search.optuna import OptunaSearch

    from tuner.search.searcher import make_sampler
    from tuner.search.study import distributions

    return OptunaSearch(
        space=distributions(spec.space),
        metric=spec.scheduler.metric,
        mode=spec.scheduler.mode,
        sampler=make_sampler(spec),
    )


def one_search(
    spec: SearchSpec, stock: bool, budget: int, data_ref: Any
) -> tuple[dict[str, Any], pd.DataFrame]:
    from tuner.results.tables import trial_rows
    from tuner.search.run import SearchRun

    results = ResultsDir(Path(spec.storage_path) / spec.name)
    results.path.mkdir(parents=True)
    search = SearchRun(
        spec,
        results,
        data_ref,
        search_alg=stock_optuna if stock else None,
        stop=EpochBudget(budget),
    )
    t0 = time.time()
    grid = search.fit(callbacks=[])
    wall_s = time.time() - t0
    rows = trial_rows(grid).sort_values(["timestamp", "time_total_s"]).head(budget)
    best = rows.loc[rows["val_acc"].idxmax()]
    curve = pd.DataFrame(
        {
            "epochs": np.arange(1, len(rows) + 1),
            "wall_s": (rows["timestamp"] - t0).clip(lower=0).to_numpy(),
            "best_val_acc": rows["val_acc"].cummax().to_numpy(),
        }
    )
    outcome = {
        "epochs": len(rows),
        "trials": int(rows["trial_id"].nunique()),
        "wall_s": wall_s,
        "best_val_acc": float(best["val_acc"]),
        "best_params": search.params_of(str(best["trial_id"]), grid),
    }
    return outcome, curve


def retrain_test(spec: SearchSpec, params: dict[str, Any], out: Path, splits: Any) -> float:
    """The winner retrained from scratch for max_t epochs and tested once (production path)."""
    from tuner.results.layout import ResultsDir
    from tuner.stages.retrain import _retrain_one

    config = spec.retrain_config(params)
    outcome = _retrain_one(config.to_dict(), ResultsDir(out), splits, 0.0)
    return float(outcome["test"]["accuracy"])


def anytime(curves: list[pd.DataFrame], x: str, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% interval (t over seeds) of the best-so-far at each grid point."""
    from scipy import stats

    values = np.array(
        [np.interp(grid, c[x], c["best_val_acc"], left=np.nan) for c in curves], dtype=float
    )
    # Only where every seed has reached that point (a seed's first report comes later in wall
    # time), so the mean never mixes a different set of searches.
    full = (~np.isnan(values)).all(axis=0)
    mean, half = np.full(len(grid), np.nan), np.zeros(len(grid))
    mean[full] = values[:, full].mean(axis=0)
    if len(curves) > 1:
        sem = values[:, full].std(axis=0, ddof=1) / np.sqrt(len(curves))
        half[full] = sem * stats.t.ppf(0.975, len(curves) - 1)
    return mean, half


def plot(curves: dict[str, list[pd.DataFrame]], budget: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    wall_max = min(float(c["wall_s"].max()) for cs in curves.values() for c in cs)
    for ax, x, grid, label in (
        (axes[0], "epochs", np.arange(1, budget + 1), "epochs spent"),
        (axes[1], "wall_s", np.linspace(0, wall_max, 100), "search wall time (s)"),
    ):
        for arm, cs in curves.items():
            mean, half = anytime(cs, x, grid)
            ax.plot(grid, 100 * mean, label=arm)
            ax.fill_between(grid, 100 * (mean - half), 100 * (mean + half), alpha=0.15)
        ax.set_xlabel(label)
        ax.set_ylabel("best validation accuracy so far (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    n = len(next(iter(curves.values())))
    fig.suptitle(f"Anytime search quality: mean and 95% interval over {n} seeds per arm")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def summarize(runs: list[dict[str, Any]], arms: list[str]) -> list[dict[str, Any]]:
    table = []
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        best = np.array([r["best_val_acc"] for r in mine])
        tests = [r["test_accuracy"] for r in mine if r.get("test_accuracy") is not None]
        table.append(
            {
                "arm": arm,
                "searches": len(mine),
                "best_val_acc_mean": float(best.mean()),
                "best_val_acc_std": float(best.std(ddof=1)) if len(best) > 1 else 0.0,
                "best_val_acc_median": float(np.median(best)),
                "trials_mean": float(np.mean([r["trials"] for r in mine])),
                "wall_s_median": float(np.median([r["wall_s"] for r in mine])),
                "retrained_test_acc": tests,
            }
        )
    return table


def print_table(table: list[dict[str, Any]], budget: int) -> None:
    print(
        f"\n| arm | searches | best val acc at {budget} epochs, mean ± sd | median | trials | wall (median) | retrained test acc |"
    )
    print("|---|---|---|---|---|---|---|")
    for t in table:
        tests = ", ".join(f"{100 * a:.1f}" for a in t["retrained_test_acc"]) or "-"
        print(
            f"| {t['arm']} | {t['searches']} | {100 * t['best_val_acc_mean']:.2f} ± "
            f"{100 * t['best_val_acc_std']:.2f} | {100 * t['best_val_acc_median']:.2f} | "
            f"{t['trials_mean']:.1f} | {t['wall_s_median']:.0f} s | {tests} |"
        )


SMOKE_LABEL = "SMOKE TEST (tiny synthetic task, one seed): checks the bench runs; no result"
SMOKE_BASE = {
    "dataset": {
        "name": "synthetic",
        "num_classes": 3,
        "image_size": 16,
        "synthetic_train_size": 400,
        "synthetic_test_size": 100,
        "val_fraction": 0.25,
        "train_subset": None,
    },
    "model": {"width": 4, "depth": 2},
}


def paired(runs: list[dict[str, Any]], arms: list[str], base: str) -> list[dict[str, Any]]:
    """Each arm against `base` on the same seeds (same start-up trials): mean difference of
    best-at-budget in points with its 95% t interval, and wins/ties/losses."""
    from scipy import stats

    by = {(r["arm"], r["seed"]): r["best_val_acc"] for r in runs}
    seeds = sorted({r["seed"] for r in runs if r["arm"] == base})
    out = []
    for arm in arms:
        d = 100 * np.array([by[(arm, s)] - by[(base, s)] for s in seeds if (arm, s) in by])
        half = (
            stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
        )
        out.append(
            {
                "arm": arm,
                "against": base,
                "mean_diff_points": float(d.mean()),
                "ci95_half_points": float(half),
                "wins": int((d > 1e-9).sum()),
                "ties": int((np.abs(d) <= 1e-9).sum()),
                "losses": int((d < -1e-9).sum()),
            }
        )
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("spec", type=Path)
    p.add_argument("--data-root")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--budget-epochs", type=int, default=32)
    p.add_argument(
        "--retrain", type=int, default=3, help="retrain each arm's winner for this many seeds"
    )
    p.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--json", type=Path)
    p.add_argument("--smoke", action="store_true", help=SMOKE_LABEL)
    p.add_argument(
        "--analyse", type=Path, metavar="JSON", help="table and plot again from a saved run"
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.budget_epochs, args.retrain = 1, 6, 1
    return args


def search_all(
    args: argparse.Namespace, raw: dict[str, Any], out_json: Path, env: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every (seed, arm) search; seeds outer so drift hits every arm alike."""
    import ray
    import torch

    from trainable.data.datasets import load_splits

    storage = tempfile.mkdtemp(prefix="bench-search-quality-")
    torch.set_num_threads(2)  # the retraining runs in this process, alone
    splits = load_splits(validate_spec(raw).base_config().dataset)
    started = not ray.is_initialized()  # a test's session may hold one already
    if started:
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    data_ref = ray.put(splits)
    runs: list[dict[str, Any]] = []
    try:
        for seed in range(args.seeds):
            for arm in args.arms:
                spec = arm_spec(raw, arm, seed, storage)
                outcome, curve = one_search(spec, ARMS[arm][2], args.budget_epochs, data_ref)
                if seed < args.retrain:
                    out = Path(storage) / spec.name / "retrain"
                    outcome["test_accuracy"] = retrain_test(
                        spec, outcome["best_params"], out, splits
                    )
                runs.append({"arm": arm, "seed": seed, **outcome, "curve": curve.to_dict("list")})
                print(
                    f"[{arm} seed {seed}] best val {outcome['best_val_acc']:.4f} "
                    f"in {outcome['trials']} trials, {outcome['wall_s']:.0f} s",
                    flush=True,
                )
                # Kept as it goes: a stopped benchmark keeps the searches it finished.
                write_json("search_quality", {"environment": env, "runs": runs}, out_json)
    finally:
        if started:
            ray.shutdown()
    return runs


def finish(payload: dict[str, Any], arms: list[str], out_json: Path) -> None:
    """The table, the paired comparison against random search, the plot, the JSON."""
    runs, budget = payload["runs"], payload["budget_epochs"]
    payload["table"] = summarize(runs, arms)
    print_table(payload["table"], budget)
    if "random+ASHA" in arms:
        payload["paired_vs_random"] = paired(runs, arms, "random+ASHA")
        print(
            "\n| arm | best val acc minus random+ASHA's, same seed (points, 95% CI) | wins/ties/losses |"
        )
        print("|---|---|---|")
        for d in payload["paired_vs_random"]:
            print(
                f"| {d['arm']} | {d['mean_diff_points']:+.2f} ± {d['ci95_half_points']:.2f} "
                f"| {d['wins']}/{d['ties']}/{d['losses']} |"
            )
    png = out_json.with_suffix(".png")
    curves = {arm: [pd.DataFrame(r["curve"]) for r in runs if r["arm"] == arm] for arm in arms}
    plot(curves, budget, png)
    payload["plot"] = str(png)
    print(f"-> {write_json('search_quality', payload, out_json)} and {png}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out_json = args.json or Path(__file__).resolve().parents[1] / "results" / "search_quality.json"
    if args.analyse:
        payload = json.loads(args.analyse.read_text())
        finish(payload, [t["arm"] for t in payload["table"]], out_json)
        return 0
    env = environment()  # before the run: the commit that is measured
    raw = deep_merge(read_yaml(args.spec), parse_overrides(args.overrides))
    if args.smoke:
        print(SMOKE_LABEL)
        raw = deep_merge(raw, {"base": SMOKE_BASE})
    if args.data_root:
        raw = deep_merge(raw, {"base": {"dataset": {"root": args.data_root}}})
    runs = search_all(args, raw, out_json, env)
    jpeg = args.data_root and "jpeg" in args.data_root.lower()
    payload = {
        "label": SMOKE_LABEL if args.smoke else None,
        "spec": str(args.spec),
        "overrides": args.overrides,
        "data": "CIFAR-10 (JPEG q75 copy)" if jpeg else args.data_root,
        "budget_epochs": args.budget_epochs,
        "environment": env,
        "runs": runs,
    }
    finish(payload, args.arms, out_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
