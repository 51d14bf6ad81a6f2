"""What MLflow tracking costs a search: the same tiny search with and without it, alternated.

    python -m bench.search.tracking_overhead --mlflow ~/.cache/hpsearch/mlflow-server-*/bin/mlflow

Starts MLflow's tracking server on 127.0.0.1 (SQLite, local artifacts; `make mlflow-server`
builds it), then runs `python -m tuner run` on the tests' tiny synthetic search (8 trials,
ASHA over 3 epochs, 2 seeds) `--repeats` times each way, one at a time, and reports the medians
of the search stage (manifest `stages.search.wall_s`) and of the whole command. Writes
bench/results/tracking_overhead.json.
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
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.support.env import environment, write_json
from bench.support.services import free_port
from bench.support.specs import tiny_spec

REPO = Path(__file__).resolve().parents[2]


def start_server(mlflow: str, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            *(mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}"),
            *("--artifacts-destination", str(root / "artifacts")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the MLflow server did not start")


def one_run(root: Path, name: str, tracking: str | None) -> dict[str, float]:
    spec = root / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(name, str(root / "results"))))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if tracking:
        env["MLFLOW_TRACKING_URI"] = tracking
    cmd = [sys.executable, "-m", "tuner", "run", str(spec), "--no-dashboard"]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
    total = time.perf_counter() - t0
    manifest = json.loads((root / "results" / name / "manifest.json").read_text())
    return {"search_s": float(manifest["stages"]["search"]["wall_s"]), "command_s": total}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--mlflow", required=True, help="the server's `mlflow` executable")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    proc, url = start_server(args.mlflow, root)
    runs: dict[str, list[dict[str, float]]] = {"without MLflow": [], "with MLflow": []}
    try:
        for i in range(args.repeats):
            runs["without MLflow"].append(one_run(root, f"off{i}", None))
            runs["with MLflow"].append(one_run(root, f"on{i}", url))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    med: dict[str, Any] = {
        arm: {key: statistics.median(r[key] for r in rows) for key in ("search_s", "command_s")}
        for arm, rows in runs.items()
    }
    print("| tiny search (8 trials, 2 seeds) | search stage | whole command |\n|---|---|---|")
    for arm, m in med.items():
        print(f"| {arm} | {m['search_s']:.1f} s | {m['command_s']:.1f} s |")
    payload = {"environment": environment(), "repeats": args.repeats, "runs": runs, "median": med}
    print(f"-> {write_json('tracking_overhead', payload, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
