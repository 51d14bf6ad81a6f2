"""One local Ray for the whole session (about 3 s to start); never `ray stop`."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench.support.specs import tiny_spec
from tuner.results.records import Outcome


def write_spec(tmp_path: Path, name: str, storage: Path | str = "results") -> Path:
    """`<tmp_path>/<name>.yaml`: 4 trials of 2 epochs each (FIFO), one retraining seed; the
    short end-to-end search the cluster and bucket tests run through the CLI."""
    raw = tiny_spec(name, str(storage), num_samples=4)
    raw["scheduler"] = {"kind": "fifo", "metric": "val_loss", "mode": "min", "max_t": 2}
    raw["retrain"] = {"seeds": 1}
    spec_file = tmp_path / f"{name}.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    return spec_file


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import ray

    # Ray's workers inherit the environment at start: the tests' decode cache (tests/conftest.py
    # points every test at this folder), so trials map the caches the tests' drivers wrote.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HPSEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def finished_search(
    ray_session: None, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Outcome]:
    """One finished tiny search (8 trials, ASHA), stored as `make run` does
    (<root>/<timestamp>/<name>/), shared by the tests that only read it (~40 s to make).
    It logs to the session's MLflow server, which test_tracking reads back."""
    from tuner.integrations.cluster import RayOptions
    from tuner.spec import validate_spec
    from tuner.stages import experiment

    root = tmp_path_factory.mktemp("results")
    raw = tiny_spec("tiny", str(root / "20260101-000000"))
    spec = validate_spec(raw)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        outcome = experiment.run(spec, raw, RayOptions())
    return experiment.results_dir_for(spec).path, outcome


def assert_logged_once_after_resume(uri: str, results_dir: Path) -> None:
    """What a search interrupted in its search stage and resumed logged to MLflow: one parent
    run, FINISHED (KILLED at the stop, reopened by resume), one run per trial (a trial resumed
    from its checkpoint logs into the run it had), each seed once, one registered version."""
    import pandas as pd
    from mlflow import MlflowClient

    manifest = json.loads((results_dir / "manifest.json").read_text())
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(manifest["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    roles = [r.data.tags.get("hpsearch.role") for r in children]
    summary = pd.read_csv(results_dir / "summary.csv", dtype={"trial_id": str})
    assert roles.count("seed") == 2 and roles.count("trial") == len(summary)
    trials = [r for r in children if r.data.tags.get("hpsearch.role") == "trial"]
    names = sorted(r.data.tags["trial_name"] for r in trials)
    assert names == sorted(f"trial-{t}" for t in summary["trial_id"])
    assert all(r.data.tags["status"] == "completed" for r in trials)
    assert all(r.info.status == "FINISHED" for r in trials)
    assert manifest["stages"]["register"]["version"] == "1"


@contextlib.contextmanager
def ray_log_messages() -> Iterator[list[str]]:
    """The messages of every record that reaches the `ray` logger's handlers meanwhile (what
    a filter there lets through to the terminal)."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    ray_log = logging.getLogger("ray")
    handler = Keep()
    ray_log.addHandler(handler)
    try:
        yield seen
    finally:
        ray_log.removeHandler(handler)
