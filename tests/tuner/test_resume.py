"""Ctrl-C during a search, then `python -m tuner resume`: finished trials are kept as they were."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.tuner.conftest import tiny_spec

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def finished_trials(results_dir: Path) -> dict[str, list[float]]:
    """trial_id -> val_acc by epoch, for trials whose trainer reported its final epoch."""
    out = {}
    for result_file in results_dir.glob("*/result.json"):
        rows = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        if rows and rows[-1].get("final"):
            out[rows[-1]["trial_id"]] = [r["val_acc"] for r in rows]
    return out


def test_interrupted_search_resumes_and_keeps_finished_trials(
    tmp_path: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both commands log to MLflow: the resumed search must log into the same runs.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    raw = tiny_spec("interrupted", str(tmp_path), num_samples=6)
    raw["base"] = {
        **raw["base"],
        "dataset": {**raw["base"]["dataset"], "synthetic_train_size": 3000},
    }
    raw["scheduler"] = {"kind": "fifo", "metric": "val_loss", "mode": "min", "max_t": 3}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    results_dir = tmp_path / "interrupted"

    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", "run", str(spec_file), "--num-cpus", "2", "--no-dashboard"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not finished_trials(results_dir) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    before = finished_trials(results_dir)
    assert before, "no trial finished before the deadline"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=180)
    if len(before) == 6:
        pytest.skip("the search finished before the interrupt arrived")
    assert proc.returncode == 130, stderr
    assert f"python -m tuner resume {results_dir}" in stderr.strip().splitlines()[-1]
    assert json.loads((results_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert not (results_dir / "best").exists()

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuner",
            "resume",
            str(results_dir),
            "--num-cpus",
            "2",
            "--no-dashboard",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rows = pd.read_parquet(results_dir / "trials.parquet")
    summary = pd.read_csv(results_dir / "summary.csv")
    assert len(summary) == 6 and (summary["status"] == "completed").all()
    for trial_id, val_accs in before.items():
        kept = rows[rows["trial_id"] == trial_id].sort_values("epoch")
        assert kept["val_acc"].tolist() == val_accs  # same trial, same numbers: not rerun
    manifest = json.loads((results_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert (results_dir / "best_config.yaml").is_file()
    assert_one_run_per_trial_after_resume(mlflow_server, manifest, results_dir)


def assert_one_run_per_trial_after_resume(
    uri: str, manifest: dict[str, Any], results_dir: Path
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("interrupted")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    roles = [r.data.tags.get("hpsearch.role") for r in runs]
    assert roles.count("search") == 1 and roles.count("seed") == 2
    parent = client.get_run(manifest["mlflow_run_id"])
    assert parent.info.status == "FINISHED"  # KILLED at the interrupt, reopened by resume
    trials = [r for r in runs if r.data.tags.get("hpsearch.role") == "trial"]
    names = sorted(r.data.tags["trial_name"] for r in trials)
    summary = pd.read_csv(results_dir / "summary.csv", dtype={"trial_id": str})
    assert names == sorted(f"trial-{t}" for t in summary["trial_id"])
    assert all(r.data.tags["status"] == "completed" for r in trials)
    assert all(r.info.status == "FINISHED" for r in trials)
    assert manifest["stages"]["register"]["version"] == "1"
