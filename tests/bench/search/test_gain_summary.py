"""bench/search/gain_summary.py: each own-data pair's gain against the standard error of its
folder's test split, per folder and over every pair."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.search.gain_summary import main
from tests.trainable.data.test_data import make_tree
from tests.trainable.data.test_inspect import flat_tree


def _pair(folder: Path, run_acc: float, default_acc: float, **run: Any) -> dict[str, Any]:
    """One pair as `bench.search.own_data` writes it (the keys the summary reads)."""
    return {
        "folder": str(folder),
        "run": {"test_accuracy": run_acc, "wall_s": 590.0, **run},
        "default": {"test_accuracy": default_acc, "wall_s": 570.0},
        "gain": run_acc - default_acc,
    }


def _file(path: Path, budget_s: float, runs: list[dict[str, Any]]) -> Path:
    env = {"git_commit": "abc1234"}
    path.write_text(json.dumps({"budget_s": budget_s, "runs": runs, "environment": env}))
    return path


def test_gains_are_set_against_each_folders_test_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tree(tmp_path / "split", ["a", "b"], per_class=50)  # a test/ folder of 100 images
    flat_tree(tmp_path / "flat", {"a": 100, "b": 100})  # no test/: 20% carved, 40 images
    vb = {"gain": 0.02, "min_gain": 0.05}
    first = _file(
        tmp_path / "one.json",
        600,
        [
            _pair(tmp_path / "split", 0.80, 0.90, retrained="base", versus_base=vb),
            _pair(tmp_path / "flat", 0.75, 0.70, retrained="winner"),
        ],
    )
    second = _file(tmp_path / "two.json", 600, [_pair(tmp_path / "split", 0.90, 0.90)])
    other_budget = _file(tmp_path / "four_minutes.json", 240, [_pair(tmp_path / "flat", 0, 1)])
    out = tmp_path / "summary.json"
    assert main([str(first), str(second), str(other_budget), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    pairs = got["pairs"]
    assert [(p["folder"], p["test_images"]) for p in pairs] == [
        ("split", 100),
        ("flat", 40),
        ("split", 100),
    ]
    assert pairs[0]["se"] == pytest.approx(math.sqrt((0.8 * 0.2 + 0.9 * 0.1) / 100))
    assert pairs[0]["z"] == pytest.approx(-0.10 / pairs[0]["se"])
    assert pairs[1]["se"] == pytest.approx(math.sqrt((0.75 * 0.25 + 0.7 * 0.3) / 40))
    assert got["folders"]["split"] == {
        "pairs": 2,
        "median_gain": pytest.approx(-0.05),
        "median_se": pytest.approx((pairs[0]["se"] + pairs[2]["se"]) / 2),
    }
    overall = got["overall"]
    assert overall["mean_gain"] == pytest.approx((-0.10 + 0.05 + 0.0) / 3)
    assert overall["mean_gain_se"] == pytest.approx(math.sqrt(sum(p["se"] ** 2 for p in pairs)) / 3)
    assert overall["signs"] == {"ahead": 1, "level": 1, "behind": 1}
    assert overall["sign_test_p"] == pytest.approx(1.0)  # one each way: no side
    table = capsys.readouterr().out
    assert "| split | 100 | 2 | -10.00, +0.00 | -5.00 |" in table
    assert "+2.00 / +5.00, - / -" in table and "base, -" in table


def test_no_pair_at_the_budget_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flat_tree(tmp_path / "flat", {"a": 10, "b": 10})
    only = _file(tmp_path / "x.json", 240, [_pair(tmp_path / "flat", 0.5, 0.5)])
    with pytest.raises(SystemExit) as exited:
        main([str(only)])
    assert exited.value.code == 2
    assert "no pair at a 600-s budget" in capsys.readouterr().err


def test_a_recorded_test_split_size_needs_no_folder(tmp_path: Path) -> None:
    recorded = _pair(tmp_path / "gone", 0.5, 0.4, test_images=500)
    out = tmp_path / "s.json"
    assert main([str(_file(tmp_path / "r.json", 600, [recorded])), "--json", str(out)]) == 0
    (pair,) = json.loads(out.read_text())["pairs"]
    assert pair["test_images"] == 500
    assert pair["se"] == pytest.approx(math.sqrt((0.25 + 0.24) / 500))


def test_one_sided_signs_give_the_binomial_sign_test(tmp_path: Path) -> None:
    """8 of 9 decided pairs behind, one level: two-sided p = 2 * (1 + 9) / 2**9."""
    gains = [-0.01] * 8 + [0.02, 0.0]
    runs = [_pair(tmp_path / "gone", 0.5 + g, 0.5, test_images=1000) for g in gains]
    out = tmp_path / "s.json"
    assert main([str(_file(tmp_path / "r.json", 600, runs)), "--json", str(out)]) == 0
    overall = json.loads(out.read_text())["overall"]
    assert overall["signs"] == {"ahead": 1, "level": 1, "behind": 8}
    assert overall["sign_test_p"] == pytest.approx(2 * 10 / 2**9)
