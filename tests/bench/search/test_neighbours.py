"""bench/search/neighbours.py: one step from the base config along each searched key, and every
config trained in full and tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.search.neighbours import main, neighbours, steps
from tests.trainable.data.test_inspect import flat_tree
from tests.tuner.planning.test_plan import LAPTOP, SPEED, folder
from tuner.planning.plan import make_plan
from tuner.spec import Param, validate_spec


def test_steps_double_and_halve_on_a_log_scale_a_quarter_on_a_linear_one() -> None:
    log = Param(type="loguniform", low=1.0, high=10.0)
    assert steps(log, 2.0) == [1.0, 4.0]
    assert steps(log, 8.0) == [4.0, 10.0]  # clipped to the range
    assert steps(log, 10.0) == [5.0]  # at the edge: one neighbour, not itself
    assert steps(Param(type="uniform", low=0.0, high=0.4), 0.2) == pytest.approx([0.1, 0.3])
    assert steps(Param(type="int", low=1, high=8, log=True), 3) == [2, 6]
    assert steps(Param(type="choice", values=["a", "b", "c"]), "b") == ["a", "c"]


def test_the_planned_spaces_neighbours_start_with_the_base_and_move_one_key_each() -> None:
    spec = validate_spec(make_plan(folder(), LAPTOP, 600.0, SPEED).spec())
    rows = neighbours(spec)
    base = rows[0][1]
    assert rows[0][0] == "base" and base == spec.base_point()[0]
    assert len(rows) == 1 + 2 + 2 + 2 + 1  # rate, weight decay, smoothing: 2 each; mirroring
    for label, params in rows[1:]:
        moved = [k for k in params if params[k] != base[k]]
        assert len(moved) == 1 and label.startswith(moved[0] + "=")
    assert ("augment.hflip=False", base | {"augment.hflip": False}) in rows
    with pytest.raises(SystemExit, match=r"not searched keys: model\.width"):
        neighbours(spec, ["model.width"])


@pytest.mark.slow
def test_a_tiny_folder_is_planned_and_each_config_trained_and_tested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "pets"
    flat_tree(data, {"a": 60, "b": 60})
    out = tmp_path / "n.json"
    argv = ["--data-root", str(data), "--time-budget", "2m", "--epochs", "2"]
    assert main([*argv, "--keys", "augment.hflip", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["label"] for r in result["rows"]] == ["base", "augment.hflip=False"]
    assert result["epochs"] == 2 and all(r["ok"] for r in result["rows"])
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["test_images"] > 0 for r in result["rows"])
    assert "| augment.hflip=False |" in capsys.readouterr().out
