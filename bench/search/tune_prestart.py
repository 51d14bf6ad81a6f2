"""Could a search start its trials on Ray's prestarted, pre-importing workers? (issue #17)

    python -m bench.search.tune_prestart [--repeats 5] [--wait 8]

Every search pays a fresh worker process per concurrent trial: Tune gives its trial actor a
`runtime_env` (`PL_DISABLE_FORK`, ray/tune/execution/class_cache.py), so the idle workers Ray
prestarts at `ray.init` (empty runtime env) never fit it, and the new process then imports Ray
Tune, torch and `torch._dynamo` (the first optimizer call) before its first epoch. This bench
measures the two changes that would avoid it, both through Ray internals:

- `clear`: empty Tune's default env vars, so the actor's runtime env hashes like an empty one;
- `clear+preload`: also Ray's `preload_python_modules` (a raylet system config), so the
  prestarted workers import torch, `torch._dynamo`, Ray Tune and the trainer while the driver
  does its own start-up (`--wait` seconds here, standing in for loading the data).

Each repeat is a fresh Ray in a fresh process: `Tuner.fit()` of 4 one-epoch trials, 2 at a
time, each importing the trainer and calling an optimizer once. Per run it records the fit's
wall time and how many of the trials' processes were prestarted ones (older than the fit).
Writes bench/results/tune_prestart.json. Run with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODES = ("base", "clear", "clear+preload")
PRELOAD = ["torch", "torch._dynamo", "ray.tune", "trainable.training.engine"]


def process_age_s() -> float:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    started_s = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return float(Path("/proc/uptime").read_text().split()[0]) - started_s


def trial(config: dict[str, Any]) -> None:
    import torch
    from ray import tune

    import trainable.training.engine  # noqa: F401  (what a real trial imports)

    opt = torch.optim.SGD(torch.nn.Linear(4, 4).parameters(), lr=0.1)
    opt.zero_grad()  # the first optimizer call imports torch._dynamo
    tune.report({"pid": os.getpid(), "age_s": process_age_s()})


def one_run(mode: str, wait_s: float) -> dict[str, Any]:
    """In a child process: one fresh Ray, one fit."""
    import ray
    from ray import tune

    system_config: dict[str, Any] = {}
    if "clear" in mode:
        import ray.tune.execution.class_cache as class_cache

        class_cache.DEFAULT_ENV_VARS.clear()
    if "preload" in mode:
        system_config["preload_python_modules"] = PRELOAD
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _system_config=system_config)
    time.sleep(wait_s)
    t0 = time.perf_counter()
    grid = tune.Tuner(
        trial,
        tune_config=tune.TuneConfig(num_samples=4, max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="bench-prestart-")),
    ).fit()
    fit_s = time.perf_counter() - t0
    ray.shutdown()
    metrics = [grid[i].metrics or {} for i in range(len(grid))]
    age_s = {m["pid"]: m["age_s"] for m in metrics}
    return {
        "fit_s": fit_s,
        "trial_processes": len(age_s),
        "prestarted_processes": sum(age > fit_s + 0.5 for age in age_s.values()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--wait", type=float, default=8.0, help="seconds between ray.init and fit")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(one_run(args.child, args.wait)), flush=True)
        return 0
    from bench.support.env import environment, write_json

    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for _ in range(args.repeats):
        for mode in MODES:  # interleaved, so drift hits every mode alike
            cmd = [
                sys.executable,
                "-m",
                "bench.search.tune_prestart",
                "--child",
                mode,
                "--wait",
                str(args.wait),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
            runs[mode].append(json.loads(line.removeprefix("RESULT ")))
    print(f"\n{args.repeats} runs per mode, {args.wait:g} s between ray.init and fit")
    print("| mode | median fit | each fit (prestarted/trial processes) |\n|---|---|---|")
    for mode, rs in runs.items():
        each = ", ".join(
            f"{r['fit_s']:.1f} s ({r['prestarted_processes']}/{r['trial_processes']})" for r in rs
        )
        print(f"| {mode} | {statistics.median(r['fit_s'] for r in rs):.2f} s | {each} |")
    payload = {"environment": environment(), "wait_s": args.wait, "runs": runs}
    print(f"-> {write_json('tune_prestart', payload, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
