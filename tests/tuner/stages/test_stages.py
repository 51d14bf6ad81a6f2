"""A run survives being stopped anywhere: killed (SIGKILL of the driver's process group) or
terminated (SIGTERM) at moments across the search and the retraining, then resumed to the same
complete outputs with every trial that had finished before the stop unchanged; a time budget
that ends while trials have not reported. `bench/faults/kill_anywhere.py` sweeps many more moments."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from bench.support.killing import check_complete, recover, run_until
from tests.tuner.conftest import assert_logged_once_after_resume, tiny_spec
from trainable.errors import UserError
from tuner.integrations.cluster import RayOptions
from tuner.results.layout import ResultsDir
from tuner.spec import validate_spec
from tuner.stages import experiment
from tuner.stages.manifest import Manifest

pytestmark = pytest.mark.slow
ONE_EPOCH_FIFO = {
    "kind": "fifo",
    "metric": "val_loss",
    "mode": "min",
    "max_t": 1,
    "grace_period": 1,
}


def kill_spec(tmp_path: Path, name: str, every_epoch: bool = True) -> tuple[Path, Path]:
    raw = tiny_spec(name, str(tmp_path), num_samples=4)
    raw["base"] = {
        **raw["base"],
        "dataset": {**raw["base"]["dataset"], "synthetic_train_size": 1500},
    }
    raw["scheduler"] = {"kind": "fifo", "metric": "val_loss", "mode": "min", "max_t": 3}
    # A checkpoint every epoch, the retraining seeds' too: "retraining a seed" is the moment
    # a seed has written one and not finished, and its resume starts from it.
    if every_epoch:
        raw["checkpoint_interval_s"] = 0
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    return spec_file, tmp_path / name


@pytest.mark.parametrize("moment", ["first trial finished", "retraining a seed"])
def test_killed_anywhere_resumes_to_complete_outputs(tmp_path: Path, moment: str) -> None:
    spec_file, results_dir = kill_spec(tmp_path, "killed")
    stopped = run_until(spec_file, results_dir, moment)
    if reason := stopped.skip_reason():
        pytest.skip(reason)
    assert stopped.returncode == -signal.SIGKILL
    if moment == "retraining a seed":  # the search's stages were recorded before the kill
        assert {"search", "tables"} <= set(Manifest(ResultsDir(results_dir).manifest).stages())
    done = recover(spec_file, results_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert check_complete(results_dir, stopped.finished_before) == []


@pytest.mark.parametrize("moment", ["first trial checkpoint", "retraining a seed"])
def test_sigterm_saves_state_exits_143_and_resumes(
    tmp_path: Path, moment: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the search Tune saves its state first; in retraining the run stops at once (each
    seed resumes from its checkpoint). Either way: exit 143, the resume command, resumable.
    Stopped in its search, both commands log to MLflow: the resume into the same runs."""
    tracked = moment == "first trial checkpoint"
    if tracked:
        mlflow_uri = request.getfixturevalue("mlflow_server")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    spec_file, results_dir = kill_spec(tmp_path, "terminated")
    stopped = run_until(spec_file, results_dir, moment, sig=signal.SIGTERM)
    if reason := stopped.skip_reason():
        pytest.skip(reason)
    last = stopped.stderr.strip().splitlines()[-1]
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert "SIGTERM" in last and f"python -m tuner resume {results_dir}" in last
    assert "Resume experiment with" not in stopped.stderr  # Tune's hint, for Python users
    manifest = json.loads(ResultsDir(results_dir).manifest.read_text())
    assert manifest["status"] == "interrupted" and "SIGTERM" in manifest["stop_reason"]
    done = recover(spec_file, results_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert check_complete(results_dir, stopped.finished_before) == []
    if tracked:
        assert_logged_once_after_resume(mlflow_uri, results_dir)


def test_time_budget_ending_before_first_reports_finishes_on_what_finished(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One-epoch trials, two at a time, more than the budget allows: when it ends, the running
    # and pending trials have reported nothing (the live table used to crash on them).
    raw: dict[str, Any] = tiny_spec("budget", str(tmp_path), num_samples=200, time_budget_s=12)
    # Epochs of ~1 s rather than ~0.2 s: the budget then ends inside a running trial's only
    # epoch, not in the short gap between two trials (which made this test flaky).
    raw["base"] = {
        **raw["base"],
        "dataset": {**raw["base"]["dataset"], "synthetic_train_size": 4000},
    }
    raw["scheduler"] = ONE_EPOCH_FIFO
    raw["retrain"] = {"seeds": 1}
    outcome = experiment.run(validate_spec(raw), raw, RayOptions())
    results = ResultsDir(tmp_path / "budget")
    summary = pd.read_csv(results.summary)
    no_result = summary[summary["status"] == "no_result"]
    assert (summary["status"] == "completed").any(), summary
    assert len(no_result) >= 1, summary
    assert no_result["reason"].str.contains("time budget").all()
    assert no_result["best_val_loss"].isna().all()
    assert outcome.status == "finished" and results.best_config().is_file()
    assert "without a result (time budget)" in capsys.readouterr().out


@pytest.mark.parametrize("budgeted", [True, False])
def test_a_search_with_no_result_trains_the_base_only_in_a_budgeted_run(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], budgeted: bool
) -> None:
    """A run with a whole-run budget promised a model in that time: when no trial reported
    a score (the search's time ran out first, e.g. on a loaded machine), it trains the base
    config, the default a run without search trains. A spec without one says so and stops."""
    # ~1-s epochs and 1 s of search: no trial reports its first epoch in time
    raw: dict[str, Any] = tiny_spec("nothing", str(tmp_path), num_samples=4, time_budget_s=1)
    raw["base"] = {
        **raw["base"],
        "dataset": {**raw["base"]["dataset"], "synthetic_train_size": 4000},
    }
    raw["scheduler"] = ONE_EPOCH_FIFO
    raw["retrain"] = {"seeds": 1}
    if budgeted:
        raw["budget"] = {"total_s": 60, "retrain_epoch_s": 1.0, "max_epochs": 2}
    spec = validate_spec(raw)
    point, _ = spec.base_point()
    assert point is not None
    results = ResultsDir(tmp_path / "nothing")
    if not budgeted:
        with pytest.raises(UserError, match="no trial reported a finite val_loss within "):
            experiment.run(spec, raw, RayOptions())
        assert Manifest(results.manifest).status == "failed"
        return
    outcome = experiment.run(spec, raw, RayOptions())
    summary = pd.read_csv(results.summary)
    assert summary.empty or summary["best_val_loss"].isna().all(), summary
    assert outcome.status == "finished" and outcome.retrained == "base"
    assert outcome.best_trial_id is None and outcome.best_value is None
    assert "the final training uses the base config" in capsys.readouterr().out
    trained = yaml.safe_load(results.best_config().read_text())
    assert trained["optimizer"]["lr"] == point["optimizer.lr"]
    card = json.loads(results.model_card()[1].read_text())
    assert "none of which reported a score" in json.dumps(card)


def test_resume_redoes_nothing_recorded(ray_session: None, tmp_path: Path) -> None:
    """A finished seed is never trained again: resuming a run whose export was lost reuses
    every seed's outcome and only exports."""
    raw = tiny_spec("redo", str(tmp_path), num_samples=2)
    raw["scheduler"] = ONE_EPOCH_FIFO
    experiment.run(validate_spec(raw), raw, RayOptions())
    results = ResultsDir(tmp_path / "redo")
    manifest = Manifest(results.manifest)
    seed_file = ResultsDir.run_outcome(results.retrain_run(0))
    seed_mtime = seed_file.stat().st_mtime_ns
    stages = manifest.stages()
    del stages["export"]
    manifest.update(stages=stages, status="interrupted")
    results.best_config().unlink()
    experiment.resume(results, RayOptions())
    assert results.best_config().is_file() and manifest.status == "finished"
    assert seed_file.stat().st_mtime_ns == seed_mtime  # the seed was not retrained


def test_study_journal_cut_mid_append_is_repaired(tmp_path: Path) -> None:
    from tuner.search.study import repair_journal

    results = ResultsDir(tmp_path)
    results.study.write_bytes(b'{"op_code": 0}\n{"op_code": 4, "worker_id": "a"}\n{"op_co')
    assert repair_journal(results) == len(b'{"op_co')
    assert results.study.read_bytes().endswith(b'"a"}\n')
    assert repair_journal(results) == 0  # a whole journal is left as it is


def _refuse() -> None:
    from trainable.errors import ConfigError

    raise ConfigError("config key 'epochs': got 0; Input should be greater than 0")


def test_user_error_inside_a_ray_task_arrives_as_its_one_line(ray_session: None) -> None:
    import ray

    from trainable.errors import ConfigError
    from tuner.integrations.cluster import user_errors_from_ray

    with pytest.raises(ConfigError) as info, user_errors_from_ray():
        ray.get(ray.remote(_refuse).remote())
    assert str(info.value) == "config key 'epochs': got 0; Input should be greater than 0"


def test_storage_errors_are_recognised_with_or_without_their_errno() -> None:
    import errno

    from trainable.errors import storage_error

    plain = OSError(errno.ENOSPC, "No space left on device", "/x/checkpoint.pt")
    assert storage_error(plain) is plain
    wrapped = RuntimeError("write failed")
    wrapped.__cause__ = OSError("[Errno 28] No space left on device (pyarrow)")
    found = storage_error(wrapped)
    assert found is not None and found.errno == errno.ENOSPC
    assert storage_error(OSError(errno.ENOENT, "No such file or directory")) is None
