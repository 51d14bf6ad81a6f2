"""MLflow tracking and the registry, read back with MLflow's own client from a real server.

The session's finished search (`finished_search`) ran with MLFLOW_TRACKING_URI pointing at the
test server, so these tests read what that one search logged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.tuner.conftest import tiny_spec
from trainable import cli as train_cli
from tuner.integrations.tracking import GOES_ON, MANIFEST_KEY, PARENT, ROLE, Tracker
from tuner.results.layout import ResultsDir
from tuner.spec import validate_spec
from tuner.stages.manifest import Manifest


@pytest.fixture(scope="module")
def logged(finished_search: tuple[Path, dict[str, Any]], mlflow_server: str) -> dict[str, Any]:
    from mlflow import MlflowClient

    path, _outcome = finished_search
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    by_role: dict[str, list[Any]] = {}
    for run in runs:
        by_role.setdefault(run.data.tags.get("hpsearch.role", ""), []).append(run)
    return {"client": client, "results": ResultsDir(path), "runs": by_role}


def test_the_search_is_a_parent_run_with_its_files(logged: dict[str, Any]) -> None:
    client, results = logged["client"], logged["results"]
    [parent] = logged["runs"]["search"]
    assert parent.info.status == "FINISHED"
    assert Manifest(results.manifest).read()[MANIFEST_KEY] == parent.info.run_id
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"search_space.yaml", "manifest.json", "summary.csv", "test_summary.json"} <= files


def test_each_trial_is_a_nested_run_with_params_epochs_and_status(logged: dict[str, Any]) -> None:
    client, results = logged["client"], logged["results"]
    [parent] = logged["runs"]["search"]
    trials = logged["runs"]["trial"]
    summary = pd.read_csv(results.summary, dtype={"trial_id": str})
    assert len(trials) == len(summary) == 8
    rows = {f"trial-{r['trial_id']}": r for r in summary.to_dict("records")}
    assert {"completed", "pruned"} <= {str(r["status"]) for r in rows.values()}
    for run in trials:
        row = rows[run.data.tags["trial_name"]]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["status"] == row["status"]
        lr = float(run.data.params["optimizer.lr"])
        assert math.isclose(lr, row["config.optimizer.lr"])
        history = client.get_metric_history(run.info.run_id, "val_loss")
        steps = sorted(m.step for m in history)
        assert steps == list(range(1, int(row["epochs"]) + 1))


def test_each_retraining_seed_is_a_run_with_its_test_metrics(logged: dict[str, Any]) -> None:
    client, results = logged["client"], logged["results"]
    by_seed = json.loads(results.test_summary.read_text())["test_accuracy_by_seed"]
    seeds = logged["runs"]["seed"]
    assert sorted(r.data.tags["seed"] for r in seeds) == sorted(by_seed) == ["0", "1"]
    for run in seeds:
        assert math.isclose(run.data.metrics["test_accuracy"], by_seed[run.data.tags["seed"]])
        assert "test_accuracy_class_0" in run.data.metrics
        assert run.data.params["model.name"] == "smallnet"
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 3  # epochs
        assert "test_metrics" in {a.path for a in client.list_artifacts(run.info.run_id)}
        # the training's own times (logged afterwards): config written first, outcome last
        run_dir = results.retrain_run(int(run.data.tags["seed"]))
        assert run.info.start_time == int((run_dir / "config.yaml").stat().st_mtime * 1000)
        assert run.info.end_time == int(ResultsDir.run_outcome(run_dir).stat().st_mtime * 1000)


def test_the_exported_model_is_a_registered_version(logged: dict[str, Any]) -> None:
    client, results = logged["client"], logged["results"]
    summary = json.loads(results.test_summary.read_text())
    [version] = client.search_model_versions("name = 'tiny'")
    seed = str(summary["exported_seed"])
    assert version.tags["seed"] == seed and version.tags["hpsearch.search"] == "tiny"
    assert math.isclose(
        float(version.tags["test_accuracy"]), summary["test_accuracy_by_seed"][seed]
    )
    files = {Path(a.path).name for a in client.list_artifacts(version.run_id, "model")}
    assert {"checkpoint.pt", "best_config.yaml", "test_metrics"} <= files
    # The registered version carries the deployable model and its card.
    assert {"model.onnx", "model_card.md", "model_card.json"} <= files


def test_production_training_starts_from_a_registered_version_and_is_logged(
    logged: dict[str, Any],
    mlflow_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, results = logged["client"], logged["results"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    out = tmp_path / "prod"
    code = train_cli.main(
        ["train", "--config", "models:/tiny/1", "--set", "epochs=2", "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    exported = yaml.safe_load(results.best_config().read_text())
    used = yaml.safe_load((out / "config.yaml").read_text())
    assert used["optimizer"]["lr"] == exported["optimizer"]["lr"] and used["epochs"] == 2
    experiment = client.get_experiment_by_name("hpsearch-train")
    [run] = client.search_runs([experiment.experiment_id], f"tags.out_dir = '{out}'")
    assert run.info.status == "FINISHED"
    assert float(run.data.params["optimizer.lr"]) == exported["optimizer"]["lr"]
    assert len(client.get_metric_history(run.info.run_id, "val_acc")) == 2


def test_an_unknown_registered_version_is_one_line(
    mlflow_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert train_cli.main(["train", "--config", "models:/no-such-model/3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "models:/no-such-model/3" in err and "Traceback" not in err


def test_an_unreachable_server_is_a_warning_and_tracking_stays_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.support.services import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    spec = validate_spec(tiny_spec("offline", str(tmp_path)))
    results = ResultsDir(tmp_path / "offline")
    results.path.mkdir()
    assert Tracker.open(spec, results, Manifest(results.manifest)) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: MLflow tracking at http://127.0.0.1")
    assert "goes on without it" in err


def test_a_failure_mid_search_is_one_warning_then_tracking_is_off(
    mlflow_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = validate_spec(tiny_spec("midway", str(tmp_path), tracking={"uri": mlflow_server}))
    results = ResultsDir(tmp_path / "midway")
    results.path.mkdir()
    tracker = Tracker.open(spec, results, Manifest(results.manifest))
    assert tracker is not None and tracker.live
    tracker.parent_id = "0" * 32  # a run the server does not have: every later call fails
    tracker.finish("FINISHED")
    tracker.finish("FINISHED")
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and not tracker.live


def test_trial_runs_log_through_one_client_and_a_failure_is_one_warning(
    mlflow_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    from tuner.integrations.tracking_callback import TrialRuns

    runs = TrialRuns(mlflow_server, "callback", {PARENT: "0" * 32, ROLE: "trial"}, GOES_ON)
    runs.setup()
    server = MlflowClient(tracking_uri=mlflow_server)
    run_id = server.create_run(str(runs.mlflow_util.experiment_id)).info.run_id
    runs._trial_runs["trial-a"] = run_id
    runs.log_trial_result(1, "trial-a", {"training_iteration": 1, "val_loss": 0.5})
    client = runs._client
    runs.log_trial_result(2, "trial-a", {"training_iteration": 2, "val_loss": 0.4})
    assert runs._client is client  # made once, not per reported epoch
    steps = [(m.step, m.value) for m in server.get_metric_history(run_id, "val_loss")]
    assert sorted(steps) == [(1, 0.5), (2, 0.4)]
    runs._trial_runs["trial-b"] = "0" * 32  # a run the server does not have
    for epoch in (1, 2):
        runs.log_trial_result(epoch, "trial-b", {"training_iteration": epoch, "val_loss": 0.3})
    runs.log_trial_result(3, "trial-a", {"training_iteration": 3, "val_loss": 0.2})
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "MLflow logging of the trials failed" in err
    assert len(server.get_metric_history(run_id, "val_loss")) == 2  # off after the failure


def test_a_trial_run_the_search_end_left_running_is_closed(
    mlflow_server: str, tmp_path: Path
) -> None:
    """searcher.patience ends the search under a running trial, and Ray's logger never ends
    that trial's run: the tables stage closes it (seen as a clock icon in the MLflow UI)."""
    spec = validate_spec(tiny_spec("left-running", str(tmp_path), tracking={"uri": mlflow_server}))
    results = ResultsDir(tmp_path / "left-running")
    results.path.mkdir()
    tracker = Tracker.open(spec, results, Manifest(results.manifest))
    assert tracker is not None
    tags = {PARENT: tracker.parent_id, ROLE: "trial"}
    ids = {
        name: tracker.client.create_run(tracker.experiment_id, tags=tags | {"trial_name": name})
        for name in ("trial-a", "trial-b", "trial-c")
    }
    tracker.client.set_terminated(ids["trial-a"].info.run_id, "FINISHED")  # ended by Ray
    summary = tmp_path / "summary.csv"
    pd.DataFrame(
        {"trial_id": ["a", "b", "c"], "status": ["completed", "pruned", "errored"]}
    ).to_csv(summary, index=False)
    tracker.tag_trials(summary)
    after = {n: tracker.client.get_run(r.info.run_id) for n, r in ids.items()}
    assert {n: r.info.status for n, r in after.items()} == {
        "trial-a": "FINISHED",
        "trial-b": "FINISHED",
        "trial-c": "FAILED",
    }
    assert after["trial-b"].data.tags["status"] == "pruned"
