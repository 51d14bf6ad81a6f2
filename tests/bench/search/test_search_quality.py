"""bench/search/search_quality.py: a smoke run searches every asked arm at the same epoch budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.search import search_quality

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def test_smoke_run_gives_each_arm_the_same_epoch_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "search_quality.json"
    arms = ["random+ASHA", "ray-OptunaSearch(TPE)+ASHA"]
    spec = str(REPO / "bench" / "specs" / "search_quality.yaml")
    assert search_quality.main([spec, "--smoke", "--arms", *arms, "--json", str(out)]) == 0
    assert search_quality.SMOKE_LABEL in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["label"] == search_quality.SMOKE_LABEL and out.with_suffix(".png").is_file()
    assert [run["arm"] for run in r["runs"]] == arms
    for run in r["runs"]:
        curve = run["curve"]
        assert run["epochs"] == r["budget_epochs"] == 6 == len(curve["epochs"])
        best = curve["best_val_acc"]
        assert best == sorted(best) and best[-1] == pytest.approx(run["best_val_acc"])
        assert 0 <= run["test_accuracy"] <= 1  # the winner, retrained and tested once
    assert [t["arm"] for t in r["table"]] == arms
