"""`tuner report|list|show` on one real (tiny, synthetic) finished search, read from its files."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tuner.cli import main

PNGS = [
    "learning_curves.png",
    "params.png",
    "parallel_coordinates.png",
    "confusion_matrix.png",
    "per_class_accuracy.png",
]
SECTIONS = [
    "Learning curves",
    "Hyperparameters vs. best val_loss",
    "Parallel coordinates",
    "Parameter importances",
    "Retrained best configuration on the test split",
    "Top ",
]


# The tests that read the finished search share it; the search itself takes ~35 s on 2 CPUs.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(finished_search: tuple[Path, dict[str, Any]]) -> Path:
    """The session's finished search, stored as `make run` does: <root>/<timestamp>/<name>/."""
    return finished_search[0]


@pytest.fixture(scope="module")
def report(finished: Path) -> str:
    assert main(["report", str(finished)]) == 0
    return (finished / "report" / "report.html").read_text()


@slow
def test_report_embeds_every_figure_it_writes(finished: Path, report: str) -> None:
    out = finished / "report"
    for name in PNGS:
        assert (out / name).stat().st_size > 1000, name
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', report)
    on_disk = {base64.b64encode(p.read_bytes()).decode() for p in out.glob("*.png")}
    assert set(embedded) == on_disk  # each PNG beside the page is in the page, and only those
    assert len(embedded) >= len(PNGS)
    for title in SECTIONS:
        assert f">{title}" in report, title
    assert 'src="http' not in report and "<script" not in report  # self-contained
    # the finished search retrains 2 seeds with a validation split: the best one is exported
    assert "with 2 seeds (seed " in report and "chosen by its validation score" in report


@slow
def test_report_header_matches_manifest(finished: Path, report: str) -> None:
    manifest = json.loads((finished / "manifest.json").read_text())
    test = json.loads((finished / "best" / "test_summary.json").read_text())
    assert "<h1>Search report: tiny</h1>" in report
    assert f"<dd>{manifest['status']}</dd>" in report
    assert f"<dd>{manifest['best_value']:.4f}</dd>" in report
    mean, std = test["test_accuracy_mean"], test["test_accuracy_std"]
    assert f"{mean:.2%} ± {std:.2%}" in report
    counts = ", ".join(f"{n} {s}" for s, n in manifest["trial_status_counts"].items())
    assert f"<dd>{counts}</dd>" in report
    assert html.escape(manifest["data_provenance"]) in report
    assert "How to read this" in report
    # The wall time shows both parts; the retraining's is recorded again (it was lost once).
    search, retrain = manifest["search_wall_s"], manifest["retrain_wall_s"]
    assert retrain > 0
    assert (
        f"{(search + retrain) / 60:.1f} min (search {search / 60:.1f}, retraining "
        f"{retrain / 60:.1f})"
    ) in report


@slow
def test_top_trials_table_matches_trials_parquet(finished: Path, report: str) -> None:
    rows = pd.read_parquet(finished / "trials.parquet")
    best = rows.groupby("trial_id")["val_loss"].min()
    epochs = rows.groupby("trial_id")["epoch"].max()
    table = report[report.index(">Top ") :]
    cells = re.findall(
        r"<tr>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>\s*<td>(\d+)</td>\s*<td>([^<]+)</td>", table
    )
    assert len(cells) == min(10, rows["trial_id"].nunique())
    for trial_id, status, n_epochs, value in cells:
        assert value == f"{best[trial_id]:.4f}"
        assert int(n_epochs) == epochs[trial_id]
        assert status == rows.loc[rows["trial_id"] == trial_id, "status"].iloc[-1]
    shown = [float(c[3]) for c in cells]
    assert shown == sorted(shown)  # val_loss: lowest first
    assert cells[0][3] == f"{best.min():.4f}"


@slow
def test_importances_note_instead_of_crash_when_study_is_missing(
    finished: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy, ignore=shutil.ignore_patterns("report"))
    (copy / "optuna_study.journal").unlink()
    assert main(["report", str(copy)]) == 0
    page = (copy / "report" / "report.html").read_text()
    assert "No importances" in page
    assert not (copy / "report" / "importances.png").exists()


@slow
def test_list_finds_nested_experiment(finished: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((finished / "manifest.json").read_text())
    assert main(["list", str(finished.parents[1])]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "tiny" in line)
    assert manifest["status"] in line
    assert f"{manifest['best_value']:.4f}" in line
    assert str(manifest["trials"]) in line.split()


@slow
def test_show_prints_outcome_top_trials_and_best_config(
    finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(finished)]) == 0
    out = capsys.readouterr().out
    summary = pd.read_csv(finished / "summary.csv", dtype={"trial_id": str})
    assert "tiny" in out and "finished" in out
    assert "top 5 trials by val_loss" in out
    for trial_id in summary["trial_id"].head(5):
        assert trial_id in out
    assert (finished / "best_config.yaml").read_text().splitlines()[1] in out


@pytest.mark.parametrize("command", ["report", "show", "list"])
def test_wrong_path_is_one_error_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


@slow
@pytest.mark.parametrize("command", ["report", "show"])
def test_folder_that_is_not_an_experiment_is_one_error_line(
    command: str, finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(finished.parent)]) == 1  # the timestamp folder above it
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "not a search results folder" in err


@slow
def test_report_of_unfinished_search_says_resume(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "interrupted"
    copy.mkdir()
    shutil.copy(finished / "search_space.yaml", copy / "search_space.yaml")
    manifest = json.loads((finished / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps(manifest | {"status": "interrupted"}))
    assert main(["report", str(copy)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trials.parquet" in err and "tuner resume" in err
    assert not (copy / "report").exists()
    assert main(["list", str(tmp_path)]) == 0  # listed, with its status, all the same
    assert "interrupted" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["report", "list", "show"])
def test_help_has_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"examples:\n  python -m tuner {command}" in capsys.readouterr().out
