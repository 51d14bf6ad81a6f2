"""A real Ray Tune search (Optuna TPE + ASHA) on synthetic data, checked from its outputs."""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from ray.tune import ExperimentAnalysis

from tests.conftest import run_cli
from tests.tuner.conftest import tiny_spec
from trainable.errors import DeviceError, UserError
from tuner.integrations.cluster import RayOptions
from tuner.results.layout import ResultsDir
from tuner.results.records import Outcome
from tuner.search.study import load_study
from tuner.spec import validate_spec
from tuner.stages import experiment

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


@pytest.fixture
def finished(finished_search: tuple[Path, Outcome]) -> tuple[Path, Outcome]:
    return finished_search


def test_asha_pruned_trials_are_pruned_in_optuna(finished: tuple[Path, Outcome]) -> None:
    results_dir, outcome = finished
    summary = pd.read_csv(results_dir / "summary.csv")
    assert len(summary) == 8
    pruned = summary[summary["status"] == "pruned"]
    completed = summary[summary["status"] == "completed"]
    assert len(pruned) >= 1 and len(completed) >= 1
    assert (pruned["epochs"] < 3).all() and (completed["epochs"] == 3).all()

    study = load_study(results_dir, "tiny")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == len(pruned)
    assert states.count(optuna.trial.TrialState.COMPLETE) == len(completed)
    for t in study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            # pruned with its intermediate (per-epoch) values, the last one as its value
            assert len(t.intermediate_values) >= 1
            assert t.value == t.intermediate_values[max(t.intermediate_values)]
    assert outcome.trial_status_counts == summary["status"].value_counts().to_dict()


def test_trials_parquet_has_every_epoch_once_with_config(
    finished: tuple[Path, Outcome],
) -> None:
    results_dir, outcome = finished
    rows = pd.read_parquet(results_dir / "trials.parquet")
    assert {"trial_id", "epoch", "val_acc", "train_loss", "status", "config.optimizer.lr"} <= set(
        rows.columns
    )
    assert not rows.duplicated(["trial_id", "epoch"]).any()
    summary = pd.read_csv(results_dir / "summary.csv")
    assert (
        rows.groupby("trial_id")["epoch"].max().sum()
        == summary["epochs"].sum()
        == outcome.epochs_spent
    )


def test_ray_reads_its_own_experiment_folder(finished: tuple[Path, Outcome]) -> None:
    results_dir, _ = finished
    analysis = ExperimentAnalysis(str(results_dir))
    assert len(analysis.trials) == 8


def tensorboard_scalars(event_file: Path) -> dict[str, list[float]]:
    """tag -> values, read from the TFRecord framing (length, crc, payload, crc) of an event file."""
    from tensorboardX.proto.event_pb2 import Event

    data, pos, out = event_file.read_bytes(), 0, {}
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        event = Event.FromString(data[pos + 12 : pos + 12 + length])
        pos += 12 + length + 4
        for value in event.summary.value:
            out.setdefault(value.tag, []).append(value.simple_value)
    return out


def test_trial_metrics_are_in_tensorboard_event_files(
    finished: tuple[Path, Outcome],
) -> None:
    results_dir, _ = finished
    rows = pd.read_parquet(results_dir / "trials.parquet")
    for trial_id, group in rows.groupby("trial_id"):
        (event_file,) = (results_dir / f"trial-{trial_id}").glob("events.out.tfevents.*")
        scalars = tensorboard_scalars(event_file)
        logged = scalars["ray/tune/val_loss"]
        assert logged == pytest.approx(group.sort_values("epoch")["val_loss"].tolist(), rel=1e-6)


def test_optuna_dashboard_opens_the_study_journal(finished: tuple[Path, Outcome]) -> None:
    results_dir, _ = finished
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(sys.executable).parent / "optuna-dashboard"  # the command the README shows
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            str(results_dir / "optuna_study.journal"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, body = time.monotonic() + 60, None
        while body is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as r:
                    body = json.load(r)
            except OSError:
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert body is not None, "optuna-dashboard did not answer"
    assert [s["study_name"] for s in body["study_summaries"]] == ["tiny"]


def test_best_config_is_retrained_tested_and_exported(
    finished: tuple[Path, Outcome], tmp_path: Path
) -> None:
    results_dir, outcome = finished
    test = json.loads((results_dir / "best" / "test_metrics" / "metrics.json").read_text())
    assert list(test["per_class"]) == ["class_0", "class_1", "class_2"]
    summary = json.loads((results_dir / "best" / "test_summary.json").read_text())
    assert len(summary["test_accuracy_by_seed"]) == 2
    assert summary["test_accuracy_mean"] == pytest.approx(outcome.test_accuracy_mean)
    assert (results_dir / "best" / "checkpoint.pt").is_file()
    assert (results_dir / "best" / "test_metrics" / "confusion_matrix.png").is_file()
    manifest = json.loads((results_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["packages"]["ray"]
    assert manifest["data_provenance"].startswith("synthetic")

    best = yaml.safe_load((results_dir / "best_config.yaml").read_text())
    assert best["epochs"] == 3
    proc = run_cli(
        "trainable",
        *("train", "--config", results_dir / "best_config.yaml"),
        *("--set", "epochs=1", "--out", tmp_path / "prod"),
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("tuner", "export", results_dir, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((results_dir / "best_config.json").read_text()) == best


def test_existing_results_folder_is_refused(finished: tuple[Path, Outcome]) -> None:
    results_dir, _ = finished
    before = (results_dir / "summary.csv").read_bytes()
    raw = tiny_spec("tiny", str(results_dir.parent))
    with pytest.raises(UserError, match=r"already exists.*python -m tuner resume"):
        experiment.run(validate_spec(raw), raw, RayOptions())
    assert (results_dir / "summary.csv").read_bytes() == before


def test_resuming_a_finished_search_is_refused(finished: tuple[Path, Outcome]) -> None:
    results_dir, _ = finished
    before = (results_dir / "best" / "test_summary.json").read_bytes()
    with pytest.raises(UserError, match="is a finished search: nothing to resume"):
        experiment.resume(ResultsDir(results_dir), RayOptions())
    assert (results_dir / "best" / "test_summary.json").read_bytes() == before


def test_gpu_request_without_gpus_fails_fast_and_writes_nothing(
    ray_session: None, tmp_path: Path
) -> None:
    import ray

    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this cluster has GPUs")
    raw = tiny_spec("gpu", str(tmp_path), resources={"cpus": 1, "gpu": 0.25})
    with pytest.raises(
        DeviceError, match=r"has none; run search_spaces/quick\.yaml, or pass --cpu"
    ):
        experiment.run(validate_spec(raw), raw, RayOptions())
    assert not (tmp_path / "gpu").exists()


def test_cli_gpu_refusal_is_one_line(tmp_path: Path) -> None:
    # A separate process with its own Ray: the error must come before any trial is scheduled
    # (Ray alone would wait forever); the timeout turns a hang into a failure.
    proc = run_cli(
        "tuner",
        *("run", "search_spaces/default.yaml", "--storage-path", tmp_path, "--num-cpus", "2"),
        timeout=180,
    )
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert proc.returncode == 4, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: each trial asks for 0.25 GPU") and "--cpu" in last
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


def test_the_base_config_ran_as_a_trial_and_the_winner_is_compared_with_it(
    finished: tuple[Path, Outcome],
) -> None:
    results_dir, outcome = finished
    spec = validate_spec(yaml.safe_load((results_dir / "search_space.yaml").read_text()))
    point, _ = spec.base_point()
    assert point is not None
    study = load_study(results_dir, "tiny")
    assert study.trials[0].params == pytest.approx(point)  # the first trial: the defaults
    rows = pd.read_parquet(results_dir / "trials.parquet")
    assert outcome.versus_base is not None
    versus = dataclasses.asdict(outcome.versus_base)
    base_rows = rows[rows["trial_id"].astype(str) == versus["base_trial_id"]]
    assert base_rows["config.optimizer.lr"].iloc[0] == pytest.approx(point["optimizer.lr"])
    assert versus["epoch"] == base_rows["epoch"].max()
    best = rows[(rows["trial_id"].astype(str) == versus["best_trial_id"])]
    at_epoch = best[best["epoch"] == versus["epoch"]]["val_loss"].iloc[0]
    # val_loss is minimised: a positive gain is a lower loss than the base's at that epoch.
    assert versus["gain"] == pytest.approx(base_rows["val_loss"].iloc[-1] - at_epoch)
    assert versus["best_trial_id"] == outcome.best_trial_id
    manifest = json.loads((results_dir / "manifest.json").read_text())
    tables = manifest["stages"]["tables"]
    assert tables["versus_base"] == versus
    # val_loss has no noise model: any gain keeps the winner, whose values are retrained (the
    # base's own when it is the winner).
    base_won = versus["best_trial_id"] == versus["base_trial_id"]
    assert versus["min_gain"] == 0.0 and (versus["gain"] > 0 or base_won)
    assert outcome.retrained == tables["retrained"] == ("base" if base_won else "winner")
    assert tables["best_params"] == tables["search_best_params"]
    retrained = yaml.safe_load((results_dir / "best_config.yaml").read_text())
    assert retrained["optimizer"]["lr"] == pytest.approx(tables["best_params"]["optimizer.lr"])


def test_every_finished_search_exports_a_checked_model_with_its_card(
    finished: tuple[Path, Outcome], tmp_path: Path
) -> None:
    results_dir, _ = finished
    manifest = json.loads((results_dir / "manifest.json").read_text())
    assert manifest["stages"]["deploy"]["model"] == "model.onnx"
    assert (results_dir / "model.onnx").is_file()
    card = json.loads((results_dir / "model_card.json").read_text())
    test = json.loads((results_dir / "best" / "test_summary.json").read_text())
    assert card["classes"] == ["class_0", "class_1", "class_2"] or len(card["classes"]) == 3
    assert card["input"]["dtype"] == "uint8" and card["input"]["layout"] == "NHWC"
    assert card["input"]["image_size"] == 16 and card["output"]["name"] == "probabilities"
    assert card["parity"]["images"] == 150 and card["parity"]["onnx"]["top1_agreement"] >= 0.999
    assert card["parity"]["onnx"]["max_prob_diff"] < 1e-4
    assert card["test"]["accuracy_mean_over_seeds"] == test["test_accuracy_mean"]
    assert set(card["test"]["per_class"]) == set(card["classes"])
    assert card["latency"]["ms_per_image"]["onnxruntime/batch1"] > 0
    assert card["versions"]["onnxruntime"] != "absent" and card["data"]
    assert card["origin"]["produced_by"].startswith(f"a search of {manifest['trials']} trials")
    assert card["search"]["best_trial_id"] == manifest["best_trial_id"]
    md = (results_dir / "model_card.md").read_text()
    assert md.startswith("# Model card: tiny") and "## Parity with PyTorch" in md
    # On demand, TorchScript too, into a copy of the folder (the session's search is shared).
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(results_dir, copy)
    done = run_cli("tuner", "export", copy, "--format", "torchscript")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (copy / "model.torchscript.pt").is_file()
    again = json.loads((copy / "model_card.json").read_text())
    assert again["parity"]["torchscript"]["top1_agreement"] >= 0.999
