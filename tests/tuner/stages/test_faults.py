"""Faults injected for real: a diverging trial, an out-of-memory trial, a trial worker killed
with SIGKILL, and damaged state files. Nothing finished is lost. (The driver killed or
signalled: test_stages.py; each signal's exit code: test_stopping.py.)"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml

from tests.tuner.conftest import tiny_spec
from tuner.cli import main
from tuner.integrations.cluster import RayOptions
from tuner.search.study import load_study
from tuner.spec import validate_spec
from tuner.stages import experiment

REPO = Path(__file__).resolve().parents[3]
FIFO = {"kind": "fifo", "metric": "val_loss", "mode": "min"}


def run_search(raw: dict[str, Any]) -> tuple[pd.DataFrame, Path]:
    experiment.run(validate_spec(raw), raw, RayOptions())
    results_dir = Path(raw["storage_path"]) / raw["name"]
    return pd.read_csv(results_dir / "summary.csv"), results_dir


@pytest.mark.slow
def test_diverging_trial_is_recorded_and_the_search_finishes(
    ray_session: None, tmp_path: Path
) -> None:
    # AdamW's decoupled decay multiplies weights by (1 - lr * wd) each step: at lr 10, wd 1 that
    # is -9, so the weights overflow within the first epoch. At lr 0.003 it is harmless.
    raw = tiny_spec("diverging", str(tmp_path), num_samples=4)
    raw["base"] = {**raw["base"], "batch_size": 8, "optimizer": {"weight_decay": 1.0}}
    raw["space"] = {"optimizer.lr": {"type": "choice", "values": [0.003, 10.0]}}
    raw["scheduler"] = {**FIFO, "max_t": 2}
    summary, results_dir = run_search(raw)

    exploded = summary[summary["config.optimizer.lr"] == 10.0]
    fine = summary[summary["config.optimizer.lr"] == 0.003]
    assert len(exploded) and len(fine), summary  # the seeded sampler drew both values
    assert (exploded["status"] == "diverged").all()
    assert exploded["reason"].str.contains("non-finite training loss in epoch 1").all()
    assert (fine["status"] == "completed").all()
    states = [t.state for t in load_study(results_dir, "diverging").trials]
    assert states.count(optuna.trial.TrialState.FAIL) == len(exploded)  # not scored for TPE
    assert json.loads((results_dir / "manifest.json").read_text())["status"] == "finished"
    assert (
        yaml.safe_load((results_dir / "best_config.yaml").read_text())["optimizer"]["lr"] == 0.003
    )


@pytest.mark.slow
def test_out_of_memory_trial_errors_alone(ray_session: None, tmp_path: Path) -> None:
    # A width-1024 net needs a ~300 MB weight tensor at once: past the 600 MB cap with its
    # optimizer state. A width-8 net trains within it.
    raw = tiny_spec("oom", str(tmp_path), num_samples=4, max_failures=1)
    raw["space"] = {"model.width": {"type": "choice", "values": [8, 1024]}}
    raw["resources"] = {"cpus": 1, "gpu": 0, "memory_mb": 600}
    raw["scheduler"] = {**FIFO, "max_t": 2}
    summary, results_dir = run_search(raw)

    big = summary[summary["config.model.width"] == 1024]
    small = summary[summary["config.model.width"] == 8]
    assert len(big) and len(small), summary
    assert (big["status"] == "errored").all()
    assert big["reason"].str.contains("out of host memory within resources.memory_mb=600").all()
    assert (small["status"] == "completed").all()  # neighbours unaffected
    assert json.loads((results_dir / "manifest.json").read_text())["status"] == "finished"


def raw_epochs(trial_dir: Path) -> list[int]:
    """Epochs as Tune logged them (result.json), before any de-duplication of ours."""
    lines = (trial_dir / "result.json").read_text().splitlines()
    return [int(json.loads(line)["epoch"]) for line in lines if line.strip()]


@pytest.mark.slow
def test_killed_trial_worker_is_retried_from_its_checkpoint(
    ray_session: None, tmp_path: Path
) -> None:
    # Every epoch checkpointed (interval 0), so no epoch may run twice; the default policy's
    # bound (epochs since the last write are redone) is tested on the trainer (test_engine).
    raw = tiny_spec(
        "killed-worker", str(tmp_path), num_samples=2, max_failures=2, checkpoint_interval_s=0
    )
    raw["base"] = {
        **raw["base"],
        "dataset": {**raw["base"]["dataset"], "synthetic_train_size": 3000},
    }
    raw["scheduler"] = {**FIFO, "max_t": 4}
    results_dir = tmp_path / "killed-worker"
    killed: dict[str, Any] = {}

    def kill_a_worker_mid_run() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for result_file in results_dir.glob("trial-*/result.json"):
                lines = [x for x in result_file.read_text().splitlines() if x.strip()]
                if lines and int(json.loads(lines[-1])["epoch"]) in (1, 2):
                    last = json.loads(lines[-1])
                    os.kill(int(last["pid"]), signal.SIGKILL)  # the trial's own worker process
                    killed.update(trial=result_file.parent.name, after_epoch=last["epoch"])
                    return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_a_worker_mid_run, daemon=True)
    killer.start()
    experiment.run(validate_spec(raw), raw, RayOptions())
    killer.join(timeout=5)
    assert killed, "no trial was running when the killer looked"

    summary = pd.read_csv(results_dir / "summary.csv")
    assert (summary["status"] == "completed").all(), summary[["trial_id", "status", "reason"]]
    failed = [d for d in results_dir.glob("trial-*") if (d / "error.txt").is_file()]
    assert failed, "Tune recorded no failure: the kill did not hit a running trial"
    for trial_dir in results_dir.glob("trial-*"):
        # Resumed from the last checkpoint: each epoch logged once, none replayed from scratch.
        assert raw_epochs(trial_dir) == [1, 2, 3, 4], trial_dir.name
    rows = pd.read_parquet(results_dir / "trials.parquet")
    assert not rows.duplicated(subset=["trial_id", "epoch"]).any()


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_damaged_tune_state_files_give_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results_dir = tmp_path / "damaged"
    results_dir.mkdir()
    raw = tiny_spec("damaged", str(tmp_path))
    (results_dir / "search_space.yaml").write_text(yaml.safe_dump(raw))
    (results_dir / "tuner.pkl").write_bytes(b"")  # Ray's empty-tuner.pkl case
    err = one_line_error(capsys, ["resume", str(results_dir), "--no-dashboard"])
    assert str(results_dir / "tuner.pkl") in err and "empty or corrupt" in err

    import pickle

    (results_dir / "tuner.pkl").write_bytes(pickle.dumps({"ok": 1}))
    (results_dir / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": [')
    err = one_line_error(capsys, ["resume", str(results_dir), "--no-dashboard"])
    assert "experiment_state-2026-01-01_00-00-00.json is truncated or corrupt" in err

    (results_dir / "search_space.yaml").write_text("name: [unclosed\n")
    err = one_line_error(capsys, ["resume", str(results_dir), "--no-dashboard"])
    assert "search_space.yaml" in err


def test_truncated_checkpoint_gives_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainable.cli import main as trainable_main

    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    code = trainable_main(["evaluate", "--checkpoint", str(bad)])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: ") and err.count("\n") == 1, err
    assert str(bad) in err
