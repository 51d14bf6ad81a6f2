"""The config the final training uses: the winner against the base config's own trial, and the
base config when the two cannot be compared in a budgeted run."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from tests.tuner.planning.test_plan import LAPTOP, SPEED, folder
from tuner.planning.plan import make_plan
from tuner.spec import SearchSpec, validate_spec
from tuner.stages.winner import compare_with_base


def _budgeted(**extra: Any) -> SearchSpec:
    return validate_spec(make_plan(folder(), LAPTOP, 600.0, SPEED).spec() | extra)


def _tables(
    spec: SearchSpec, base_best: float, base_status: str = "completed"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two trials: the base config's (best `base_best`, NaN when it reported nothing, and
    `base_status`) and another that reached 0.70 at epoch 2."""
    point, _ = spec.base_point()
    assert point is not None
    other = point | {"optimizer.sgd.lr_per_1024": 23.0}
    summary = pd.DataFrame(
        [
            {"trial_id": "w", "best_val_acc": 0.70, "status": "completed"}
            | {f"config.{k}": v for k, v in other.items()},
            {"trial_id": "b", "best_val_acc": base_best, "status": base_status}
            | {f"config.{k}": v for k, v in point.items()},
        ]
    )
    rows = [("w", 1, 0.55), ("w", 2, 0.70)]
    if not math.isnan(base_best):
        rows += [("b", 1, 0.50), ("b", 2, base_best)]
    return pd.DataFrame(rows, columns=["trial_id", "epoch", "val_acc"]), summary


def test_a_budgeted_run_trains_the_base_config_when_its_trial_reported_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = _budgeted()
    rows, summary = _tables(spec, math.nan, "no_result")  # the time ended it first
    found, keep = compare_with_base(spec, rows, summary, val_images=500)
    assert found is None and keep == spec.base_point()[0]
    assert "nothing to compare the winner with, so the final training uses the base config" in (
        capsys.readouterr().out
    )
    # A base config that failed is beaten by a winner that trained: the winner is kept.
    for failed in ("diverged", "errored"):
        rows, summary_failed = _tables(spec, math.nan, failed)
        assert compare_with_base(spec, rows, summary_failed, 500) == (None, None)
    # A hand-written search (no whole-run budget) keeps its winner, as before; so does one
    # under constraints, which the base config may not meet (an unmet base is not compared).
    assert compare_with_base(spec.model_copy(update={"budget": None}), rows, summary, 500) == (
        None,
        None,
    )
    limited = _budgeted(constraints={"params_m": {"max": 1.0}})
    assert compare_with_base(limited, rows, summary, 500) == (None, None)


def test_a_measured_base_is_compared_and_a_clear_winner_replaces_it() -> None:
    spec = _budgeted()
    rows, summary = _tables(spec, 0.50)  # 20 points behind on 500 images: far beyond noise
    found, keep = compare_with_base(spec, rows, summary, val_images=500)
    assert found is not None and found.winner_kept and keep is None
    assert (found.base_trial_id, found.best_trial_id, found.epoch) == ("b", "w", 2)
