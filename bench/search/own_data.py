"""Is searching worth its compute on data nobody tuned for? (issue #25)

For each image folder: `tuner run --data-root X --time-budget B` (the one command: plan,
search with the default as the first trial, final training for the epochs the budget leaves),
against the run's own base config trained once, without a search, for as many epochs as the
same budget allows (on every training image, like the final training; no epoch cap). Both are timed end to end as a user would see them; both read the test split once.

    python -m bench.search.own_data --data-root ../shared/datasets/cifar10-jpeg \
        --variants gray28 few50 --budget 5m [--repeats 1] [--json PATH]

Variants come from `bench.support.variants` (derived from the CIFAR-10 JPEG copy, or
scikit-learn's digits); `--folder DIR` adds any other image folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.support.env import environment, write_json
from bench.support.variants import VARIANTS, make
from trainable.config.reading import parse_duration
from tuner.spec import SearchSpec, validate_spec

REPO = Path(__file__).resolve().parents[2]


def _timed(cmd: list[str], timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - t0


def search_arm(folder: Path, budget_s: float, work: Path, name: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tuner", "run", "--data-root", str(folder)]
    cmd += ["--time-budget", f"{budget_s:g}", "--storage-path", str(work), "--name", name]
    done, wall = _timed(cmd, timeout=budget_s * 3 + 300)
    if done.returncode != 0:
        return {"ok": False, "wall_s": wall, "error": done.stderr.strip().splitlines()[-1:]}
    results = work / name
    manifest = json.loads((results / "manifest.json").read_text())
    test = json.loads((results / "best" / "test_summary.json").read_text())
    metrics = json.loads((results / "best" / "test_metrics" / "metrics.json").read_text())
    return {
        "ok": True,
        "wall_s": wall,
        "test_accuracy": test["test_accuracy_mean"],
        "test_balanced_accuracy": test.get("test_balanced_accuracy_mean"),
        "test_images": metrics["num_images"],  # what a gain's standard error is taken on
        "epochs": test["epochs"],
        "trials": manifest["trials"],
        "search_wall_s": manifest["search_wall_s"],
        "versus_base": manifest.get("versus_base"),
        # which config the final training used, and whether searcher.patience ended the search
        "retrained": manifest.get("retrained"),
        "ended_by_patience": manifest["stages"]["search"].get("ended_by_patience"),
        "planned_search_s": yaml.safe_load((results / "search_space.yaml").read_text()).get(
            "time_budget_s"
        ),
        "lr_retried_seeds": test.get("lr_retried_seeds"),
        # the final training's plan: its epoch measured by the probe, and as derived
        "plan_retrain": manifest["stages"].get("plan_retrain"),
        "width": yaml.safe_load((results / "search_space.yaml").read_text())["base"]["model"][
            "width"
        ],
        "spec": str(results / "search_space.yaml"),
    }


def default_arm(
    spec_file: Path, budget_s: float, work: Path, epoch_s: float | None = None
) -> dict[str, Any]:
    """The run's base config, no search, trained for the epochs the whole budget buys, by
    `python -m trainable train` (a plain process). Its epoch is measured here, in a plain
    process too, by the run's own probe (`tuner.stages.probe.measure_epoch`), and the probe's
    time counts against the budget; `epoch_s` skips the probe (tests). Until session 17 the
    arm used the run's measurement: there the final training ran 9-11% slower than this
    arm's plain process (a Ray worker alone costs ~1%, `bench.search.in_ray`; the rest is not
    explained), and the probe charged a whole checkpoint write to every epoch, so this arm
    was given ~80% of its budget (imbalanced3: 472-478 s of 600)."""
    t0 = time.monotonic()
    raw = yaml.safe_load(spec_file.read_text())
    spec = validate_spec(raw)
    assert spec.budget is not None
    # No search: training gets the whole budget, and no epoch cap (the planner caps the final
    # training at budget.max_epochs; the baseline may use every second it is given).
    uncapped = spec.budget.model_copy(update={"max_epochs": 10_000})
    probe: dict[str, float] = {}
    elapsed = 0.0  # what the budget has spent before training: the probe, as in the run
    if epoch_s is None:
        probe = _plain_probe(spec)
        epoch_s = probe.get("epoch_s")
        elapsed = time.monotonic() - t0 + probe.get("first_epochs_extra_s", 0.0)
    epochs = uncapped.epochs(elapsed_s=elapsed, epoch_s=epoch_s)
    config = spec.retrain_config({}, epochs).to_dict()
    config_file = work / "default.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    # Held to the budget as the run's final training is: it re-plans its epochs as it goes.
    left_s = spec.budget.left_s(time.monotonic() - t0)
    cmd = [sys.executable, "-m", "trainable", "train", "--config", str(config_file)]
    cmd += ["--out", str(work / "default"), "--test", "--time-budget", f"{max(1.0, left_s):.1f}"]
    done, wall = _timed(cmd, timeout=budget_s * 3 + 300)
    if done.returncode != 0:
        return {"ok": False, "wall_s": wall, "error": done.stderr.strip().splitlines()[-1:]}
    result = json.loads((work / "default" / "result.json").read_text())
    metrics = json.loads((work / "default" / "test_metrics" / "metrics.json").read_text())
    return {
        "ok": True,
        "wall_s": time.monotonic() - t0,  # with the probe, as the run's wall has its own
        "train_wall_s": wall,
        "epochs": epochs,  # as planned; `epochs_trained` after the re-plans
        "epochs_trained": result.get("epochs_planned"),
        "epoch_s": epoch_s or spec.budget.retrain_epoch_s,
        "probe": probe,
        "test_accuracy": result["test_accuracy"],
        "test_balanced_accuracy": metrics.get("balanced_accuracy"),
    }


def _plain_probe(spec: SearchSpec) -> dict[str, float]:
    """The default's final training epoch, measured in this process (no Ray)."""
    from trainable.data.datasets import load_splits
    from tuner.stages.probe import measure_epoch

    config = spec.retrain_config({})  # its epochs do not matter: the probe trains its own few
    return measure_epoch(
        config.to_dict(), load_splits(config.dataset), 0.0, spec.checkpoint_interval_s
    )


def one(folder: Path, budget_s: float, rep: int, keep: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="own-data-") as tmp:
        work = keep / f"{folder.name}-{rep}" if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run = search_arm(folder, budget_s, work, f"{folder.name}-{rep}")
        default = default_arm(Path(run["spec"]), budget_s, work) if run["ok"] else {"ok": False}
    gain = (
        run["test_accuracy"] - default["test_accuracy"] if run["ok"] and default.get("ok") else None
    )
    print(
        f"{folder.name} #{rep}: search {run.get('test_accuracy', float('nan')):.2%} in "
        f"{run['wall_s']:.0f} s; default {default.get('test_accuracy', float('nan')):.2%} in "
        f"{default.get('wall_s', float('nan')):.0f} s; gain {gain if gain is None else f'{gain:+.2%}'}",
        flush=True,
    )
    return {"folder": str(folder), "repeat": rep, "run": run, "default": default, "gain": gain}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.search.own_data", description=__doc__)
    p.add_argument("--data-root", type=Path, default=Path("../shared/datasets/cifar10-jpeg"))
    p.add_argument("--variants", nargs="*", default=["gray28", "few50"], choices=VARIANTS)
    p.add_argument("--folder", type=Path, action="append", default=[], help="another folder")
    p.add_argument("--budget", default="5m")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", type=Path, help="keep both arms' results under this folder")
    args = p.parse_args(argv)
    budget_s = parse_duration(args.budget)
    folders = [make(v, args.data_root) for v in args.variants] + args.folder
    if not folders or args.repeats < 1:
        p.error("nothing to run: give --variants or --folder, and --repeats >= 1")
    runs: list[dict[str, Any]] = []
    total = len(folders) * args.repeats
    for f in folders:
        for rep in range(args.repeats):
            runs.append(one(f, budget_s, rep, args.keep))
            # Written after every pair: a pair is 2 x the budget, and a bench stopped after
            # hours keeps what it measured ("complete" says whether it got to the end).
            partial = {"budget_s": budget_s, "repeats": args.repeats, "runs": runs}
            partial["complete"] = len(runs) == total
            out = write_json("own_data", partial | {"environment": environment()}, args.json)
    table = ["| folder | search: test acc | wall s | default: test acc | wall s | gain |"]
    table.append("|---|---|---|---|---|---|")
    for f in folders:
        mine = [r for r in runs if r["folder"] == str(f) and r["gain"] is not None]
        if not mine:
            table.append(f"| {f.name} | failed | | | | |")
            continue

        def med(arm: str, key: str, rows: list[dict[str, Any]] = mine) -> float:
            return statistics.median(r[arm][key] for r in rows)

        gain = statistics.median(r["gain"] for r in mine)
        table.append(
            f"| {f.name} | {med('run', 'test_accuracy'):.2%} | {med('run', 'wall_s'):.0f} | "
            f"{med('default', 'test_accuracy'):.2%} | {med('default', 'wall_s'):.0f} | {gain:+.2%} |"
        )
    print(f"\nbudget {budget_s:.0f} s, medians of {args.repeats}\n" + "\n".join(table))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
