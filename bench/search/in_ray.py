"""What a Ray worker costs the training inside it (issue #25, session 17).

A run's final training is a Ray task; the own-data benchmark's default arm is `python -m
trainable train`, a plain process. In session 17 the same network on the same images trained
1.86 s an epoch in the first and 1.70 s in the second. This bench trains one spec's final
training config both ways, interleaved, nothing else changed: plain, and as a
Ray task with the final training's resources, with Ray's dashboard on and off, and after
the run's probe in the same worker process. Each arm runs in a fresh process.

    python -m bench.search.in_ray --spec results/X/search_space.yaml [--data-root DIR]
        [--epochs 12] [--rounds 2] [--arms plain ray-after-probe] [--json PATH]

Per arm: the median epoch after the whitening stem's bias epochs; the table gives each Ray
arm's median over rounds against the plain arm's. The after-probe arm also records the epoch
its probe planned (`probe_epoch_s`): what a run's plan would have been. Writes bench/results/in_ray.json.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.support.env import environment, write_json
from bench.support.specs import read_spec

ARMS = ("plain", "ray", "ray-no-dashboard", "ray-after-probe")


def epoch_times(
    config_dict: dict[str, Any], data: Any, probe_first: bool = False
) -> tuple[list[float], float | None]:
    """Each epoch's time (training and what follows it, no checkpoint) of `config_dict`, and
    with `probe_first` the epoch the run's probe planned, measured first in the same process
    (a run's retraining seed may land in the worker its probe used)."""
    from trainable.config import build_config
    from trainable.files.checkpoint import SavePolicy
    from trainable.training.engine import train
    from tuner.stages.probe import measure_epoch

    planned = measure_epoch(config_dict, data, 0.0).get("epoch_s") if probe_first else None
    seen: list[float] = []
    with tempfile.TemporaryDirectory(prefix="in-ray-") as out:
        train(
            build_config(config_dict),
            out,
            report=lambda m, _c: seen.append(m["epoch_s"]),
            data=data,
            evaluate_best=False,
            save_policy=SavePolicy(interval_s=math.inf),
        )
    return seen, planned


def plain(config_dict: dict[str, Any], data: Any) -> tuple[list[float], float | None]:
    """In a fresh process of its own (spawned), as `python -m trainable train` runs."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        timed: tuple[list[float], float | None] = pool.apply(epoch_times, (config_dict, data))
    return timed


def in_ray(
    config_dict: dict[str, Any], data: Any, cpus: float, dashboard: bool, probe_first: bool
) -> tuple[list[float], float | None]:
    """As a Ray task in a fresh worker (`max_calls=1`), Ray started for this arm alone."""
    import ray

    from tuner.integrations.cluster import RayOptions, ensure_ray, share_data

    if not ensure_ray(RayOptions(dashboard=dashboard)):
        raise RuntimeError("Ray already runs in this process: each arm needs its own start")
    try:
        task = ray.remote(max_calls=1)(epoch_times).options(num_cpus=cpus)
        timed: tuple[list[float], float | None] = ray.get(
            task.remote(config_dict, share_data(data), probe_first)
        )
        return timed
    finally:
        ray.shutdown()


def run_arms(
    raw: dict[str, Any], epochs: int, rounds: int, arms: Sequence[str] = ARMS
) -> list[dict[str, Any]]:
    from trainable.data.datasets import load_splits
    from tuner.spec import validate_spec
    from tuner.stages.final_plan import RetrainData

    spec = validate_spec(raw)
    config = spec.retrain_config({}, epochs)
    data = load_splits(config.dataset)
    cpus, _gpu = RetrainData(spec, None).resources()
    skip = config.model.whiten.bias_epochs if config.model.stem == "whiten" else 0
    rows = []
    for r in range(rounds):
        for arm in arms:
            if arm == "plain":
                times, planned = plain(config.to_dict(), data)
            else:
                dashboard = arm != "ray-no-dashboard"
                probe_first = arm == "ray-after-probe"
                times, planned = in_ray(config.to_dict(), data, cpus, dashboard, probe_first)
            steady = statistics.median(times[skip:])
            rows.append(
                {"round": r, "arm": arm, "epoch_s": times, "steady_epoch_s": steady}
                | ({"probe_epoch_s": planned} if planned is not None else {})
            )
            probed = f"; its probe planned {planned:.3f} s" if planned is not None else ""
            print(
                f"round {r} {arm:>16}: {steady:.3f} s an epoch (median after {skip}){probed}",
                flush=True,
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    plain = statistics.median(r["steady_epoch_s"] for r in rows if r["arm"] == "plain")
    lines = ["| arm | median epoch s | against plain |", "|---|---|---|"]
    for arm in dict.fromkeys(r["arm"] for r in rows):
        med = statistics.median(r["steady_epoch_s"] for r in rows if r["arm"] == arm)
        lines.append(f"| {arm} | {med:.3f} | {med / plain:.3f}x |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.search.in_ray", description=__doc__)
    p.add_argument("--spec", type=Path, required=True, help="a spec with a budget (tuner init)")
    p.add_argument("--data-root", help="where its images are (default: the spec's)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="plain first")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    raw = read_spec(args.spec, args.data_root)
    if args.arms[0] != "plain":
        p.error("--arms: the first arm is plain, the one the others are compared with")
    rows = run_arms(raw, args.epochs, args.rounds, args.arms)
    print(table(rows))
    payload = {"spec": str(args.spec), "epochs": args.epochs, "rows": rows}
    print(f"wrote {write_json('in_ray', payload | {'environment': environment()}, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
