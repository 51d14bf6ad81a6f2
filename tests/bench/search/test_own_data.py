"""bench/search/own_data.py: the no-search arm trains the plan's base config for the epochs the
whole budget buys, on every training image, and reads the test split once."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.search.own_data import default_arm
from tests.conftest import run_cli
from tests.trainable.data.test_inspect import flat_tree


def test_the_default_arm_trains_the_planned_base_for_the_whole_budget(tmp_path: Path) -> None:
    flat_tree(tmp_path / "pets", {"cat": 30, "dog": 30}, size=10)
    spec_file = tmp_path / "pets.yaml"
    done = run_cli("tuner", "init", tmp_path / "pets", "--time-budget", "60s", "--out", spec_file)
    assert done.returncode == 0, done.stderr[-2000:]
    raw = yaml.safe_load(spec_file.read_text())
    # Two epochs' worth of budget after the fixed costs and the reserve (2.4, rounded to the
    # nearest): the baseline trains exactly that many.
    b = raw["budget"]
    b["total_s"] = b["after_retrain_s"] + b["reserve_s"] + 2.4 * b["retrain_epoch_s"]
    spec_file.write_text(yaml.safe_dump(raw))
    arm = default_arm(spec_file, 40, tmp_path, b["retrain_epoch_s"])
    assert arm["ok"] and arm["epochs"] == 2
    assert 0.0 <= arm["test_accuracy"] <= 1.0 and arm["wall_s"] > 0
    trained = yaml.safe_load((tmp_path / "default.yaml").read_text())
    # The base config as the run's final training would train it: no subset, no validation.
    assert trained["dataset"]["train_subset"] is None and trained["dataset"]["val_fraction"] == 0
    assert trained["optimizer"]["sgd"] == raw["base"]["optimizer"]["sgd"]
    # With the run's own measured epoch (twice the estimate here), the same budget buys half
    # as many: 1.2 epochs, rounded to 1.
    (tmp_path / "slower").mkdir()
    slower = default_arm(spec_file, 40, tmp_path / "slower", 2 * b["retrain_epoch_s"])
    assert slower["ok"] and slower["epochs"] == 1
    assert slower["epoch_s"] == 2 * b["retrain_epoch_s"]
    # Without an epoch time the arm measures its own, in a plain process, inside its wall.
    (tmp_path / "probed").mkdir()
    probed = default_arm(spec_file, 40, tmp_path / "probed")
    assert probed["ok"] and probed["probe"]["epoch_s"] == probed["epoch_s"] > 0
    assert probed["probe"]["write_s"] > 0 and probed["wall_s"] > probed["train_wall_s"]
    expected = b["total_s"] - b["after_retrain_s"] - b["reserve_s"]
    assert probed["epochs"] <= max(1, round(expected / probed["epoch_s"]))
