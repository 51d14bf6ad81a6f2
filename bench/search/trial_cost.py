"""What a trial costs the driver at scale: searches of the lookup trainable (no training), as
`tuner` runs them (`SearchRun`: our Optuna searcher, Ray Tune, the study's journal, FIFO).

    python -m bench.search.trial_cost [--trials 100 1000] [--concurrency 8] [--table nb201-cifar10]

Per search: wall time per trial, per trial in windows of `--window` trials in completion order
(flat, or growing with the study?), and the driver's resident memory (anonymous, from /proc)
before and after. A lookup takes microseconds, so all of it is the search machinery's: Tune's
trial start and bookkeeping, the searcher's ask and tell, the journal's writes. Target (#27):
<= 50 ms a trial, flat from 100 to 1,000 trials. Writes bench/results/trial_cost.json.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.search.lookup import TABLES
from bench.search.tabular import ray_search, spec_for
from bench.support.env import environment, write_json


def driver_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def one_search(table: str, trials: int, concurrency: int, window: int) -> dict[str, Any]:
    spec = spec_for(table, "tpe", 0, trials, concurrency)
    rss_before = driver_rss_mib()
    study_trials, wall = ray_search(spec, table)
    done = sorted(
        t.datetime_complete.timestamp() for t in study_trials if t.datetime_complete is not None
    )
    # ms a trial in each window of completions: the gaps between the first and last of it
    windows = [
        1000
        * (done[min(i + window, len(done) - 1)] - done[i])
        / (min(i + window, len(done) - 1) - i)
        for i in range(0, len(done) - 1, window)
        if min(i + window, len(done) - 1) > i
    ]
    return {
        "table": table,
        "trials": trials,
        "completed": len(done),
        "concurrency": concurrency,
        "wall_s": wall,
        "ms_per_trial": 1000 * wall / trials,
        "ms_per_trial_by_window": windows,
        "window": window,
        "driver_rss_mib_before": rss_before,
        "driver_rss_mib_after": driver_rss_mib(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.search.trial_cost", description=__doc__.split("\n")[0]
    )
    p.add_argument("--trials", nargs="+", type=int, default=[100, 1000])
    p.add_argument("--concurrency", nargs="+", type=int, default=[8])
    p.add_argument("--table", default="nb201-cifar10", choices=TABLES)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    import ray

    env = environment()
    rows = []
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        for conc in args.concurrency:
            for n in args.trials:
                row = one_search(args.table, n, conc, min(args.window, n))
                rows.append(row)
                print(
                    f"{n} trials x{conc}: {row['ms_per_trial']:.0f} ms/trial, windows "
                    + " ".join(f"{w:.0f}" for w in row["ms_per_trial_by_window"])
                    + f"; driver {row['driver_rss_mib_before']:.0f} -> "
                    f"{row['driver_rss_mib_after']:.0f} MiB",
                    flush=True,
                )
    finally:
        ray.shutdown()
    print("| trials | concurrent | ms/trial (median window) | first / last window | driver MiB |")
    print("|---|---|---|---|---|")
    for r in rows:
        w = r["ms_per_trial_by_window"]
        print(f"| {r['trials']} | {r['concurrency']} | {r['ms_per_trial']:.0f} "
              f"({statistics.median(w):.0f}) | {w[0]:.0f} / {w[-1]:.0f} | "
              f"{r['driver_rss_mib_before']:.0f} -> {r['driver_rss_mib_after']:.0f} |")  # fmt: skip
    print(f"-> {write_json('trial_cost', {'rows': rows, 'environment': env}, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
