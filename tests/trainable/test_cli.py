"""The command line as a user runs it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
TINY_SETS = [
    "dataset.name=synthetic",
    "dataset.num_classes=3",
    "dataset.image_size=16",
    "dataset.synthetic_train_size=300",
    "dataset.synthetic_test_size=90",
    "model.width=8",
    "model.depth=2",
    "batch_size=50",
    "epochs=2",
    "precision=fp32",
]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_cli("trainable", *args)


def sets(*extra: str) -> list[str]:
    out: list[str] = []
    for item in [*TINY_SETS, *extra]:
        out += ["--set", item]
    return out


def test_train_then_evaluate_on_test(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run("train", *sets(), "--out", out, "--test")
    assert proc.returncode == 0, proc.stderr
    assert "epoch   2/2" in proc.stdout and "test accuracy" in proc.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and len(result["history"]) == 2
    test = json.loads((out / "test_metrics" / "metrics.json").read_text())
    assert list(test["per_class"]) == ["class_0", "class_1", "class_2"]
    assert test["num_images"] == 90

    proc = run("evaluate", "--checkpoint", out / "best", "--split", "test")
    assert proc.returncode == 0, proc.stderr
    again = json.loads((out / "eval-test" / "metrics.json").read_text())
    assert again["confusion_matrix"] == test["confusion_matrix"]

    # The same run as a deployable model: both formats and the card, into the run's folder.
    proc = run("export", out, "--format", "onnx", "torchscript")
    assert proc.returncode == 0, proc.stderr
    assert f"model card {out / 'model_card.md'}" in proc.stdout
    assert (out / "model.onnx").is_file() and (out / "model.torchscript.pt").is_file()
    card = json.loads((out / "model_card.json").read_text())
    assert card["classes"] == list(test["per_class"]) and card["input"]["image_size"] == 16
    for fmt in ("onnx", "torchscript"):
        assert card["parity"][fmt]["top1_agreement"] >= 0.999
    assert card["parity"]["images"] == 90 and card["test"]["accuracy"] == test["accuracy"]
    assert card["origin"]["produced_by"].startswith("python -m trainable train: completed after 2")
    assert card["config"]["epochs"] == 2 and "search" not in card
    md = (out / "model_card.md").read_text()
    assert f"Exported from {out}" in md and "| class_0 |" in md and "config.yaml" in md


def test_resume_continues_an_earlier_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run("train", *sets("epochs=1"), "--out", out).returncode == 0
    # Same folder again without --resume: refused, nothing touched.
    before = (out / "last" / "checkpoint.pt").stat().st_mtime_ns
    proc = run("train", *sets("epochs=1"), "--out", out)
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert (out / "last" / "checkpoint.pt").stat().st_mtime_ns == before
    # The saved config says epochs=1; finishing it is a no-op that still reports.
    proc = run("train", "--out", out, "--resume")
    assert proc.returncode == 0, proc.stderr


def test_checkpoint_interval_reaches_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainable.cli import main
    from trainable.files.checkpoint import DEFAULT_INTERVAL_S
    from trainable.training import engine

    seen: list[float] = []
    real_train = engine.train

    def spy(*args: object, **kwargs: Any) -> engine.TrainResult:
        seen.append(kwargs["save_policy"].interval_s)
        return real_train(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "train", spy)
    assert main(["train", *sets("epochs=1"), "--out", str(tmp_path / "a")]) == 0
    every = ["--checkpoint-every", "0"]
    assert main(["train", *sets("epochs=1"), *every, "--out", str(tmp_path / "b")]) == 0
    assert seen == [DEFAULT_INTERVAL_S, 0.0]
    assert (tmp_path / "b" / "last" / "checkpoint.pt").is_file()
    # The help names the same default (argparse's default stays None: its parser has no torch).
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert f"(default {DEFAULT_INTERVAL_S:g}; 0: every epoch)" in " ".join(
        capsys.readouterr().out.split()
    )


def test_a_run_trained_without_test_exports_with_the_parity_pass_only(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run("train", *sets("epochs=1"), "--out", out).returncode == 0
    proc = run("export", out)
    assert proc.returncode == 0, proc.stderr
    card = json.loads((out / "model_card.json").read_text())
    assert card["test"] is None and card["parity"]["onnx"]["top1_agreement"] >= 0.999
    assert not (out / "model.torchscript.pt").exists()
    assert "no per-class metrics" in (out / "model_card.md").read_text()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["train", "--set", "optimizer.lr=0"], 2, "config key 'optimizer.lr': got 0"),
        (["train", "--set", "model.dropout=1.0"], 2, "model.dropout"),
        (["train", "--set", "bogus=1"], 2, "unknown config key 'bogus'"),
        (["train", "--config", "missing.yaml"], 2, "config file not found"),
        (
            ["train", "--set", "dataset.download=false", "--data-root", "/nonexistent"],
            3,
            "CIFAR-10 not found",
        ),
        (["train", "--resume"], 1, "nothing to resume"),
        (
            ["train", "--checkpoint-every", "-1"],
            2,
            "--checkpoint-every '-1': expected seconds >= 0",
        ),
        (["evaluate", "--checkpoint", "/nonexistent.pt"], 3, "checkpoint not found"),
        (["export", "/nonexistent"], 3, "/nonexistent is not a folder"),
        (["export", "."], 3, "holds no best/checkpoint.pt: not a training run folder"),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    args: list[str], code: int, needle: str, tmp_path: Path
) -> None:
    proc = run(*args, "--out", tmp_path / "o") if args[0] == "train" else run(*args)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_cuda_without_gpu_is_a_one_line_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run("train", *sets("device=cuda"), "--out", tmp_path / "o")
    assert proc.returncode == 4 and "no CUDA GPU is visible" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


def test_corrupt_checkpoint_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"\x00" * 100)
    proc = run("evaluate", "--checkpoint", bad)
    assert proc.returncode == 3
    assert f"checkpoint {bad} is corrupt" in proc.stderr and "Traceback" not in proc.stderr


def test_debug_shows_the_traceback() -> None:
    proc = run("--debug", "train", "--set", "optimizer.lr=0")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_help_has_examples() -> None:
    for sub in ("train", "evaluate", "export", "predict"):
        proc = run(sub, "--help")
        assert proc.returncode == 0 and "examples:" in proc.stdout


def test_the_readme_has_the_exit_code_table() -> None:
    from trainable.errors import ExitCode, exit_code_table

    assert exit_code_table() in (REPO / "README.md").read_text()
    assert {int(c) for c in ExitCode} == {0, 1, 2, 3, 4, 5, 130, 143}


def test_a_time_budget_replans_the_epochs_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    from trainable.cli import main

    # A budget already spent: after two timed epochs the run ends its schedule in one more,
    # and result.json says which epochs it planned last.
    out = tmp_path / "run"
    triangular = sets("epochs=20", "schedule.name=triangular")
    assert main(["train", *triangular, "--time-budget", "0.01", "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["epochs_run"] == 4 and result["epochs_planned"] == 4
    assert "re-planned to the deadline" in result["reason"]
    proc = run("train", *triangular, "--time-budget", "soon", "--out", tmp_path / "bad")
    assert proc.returncode == 2 and not (tmp_path / "bad").exists()
    assert proc.stderr.strip().splitlines() == [
        "error: --time-budget 'soon' is not a duration; write e.g. 600, 600s, 10m or 1.5h"
    ]
