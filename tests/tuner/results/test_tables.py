"""The winner against the base config's own trial, from the tables a search writes."""

from __future__ import annotations

import pandas as pd
import pytest

from trainable.vocab import Objective
from tuner.results.tables import base_comparison

# Trial a: the base config (lr 0.003), stopped by ASHA after epoch 1. Trial b: the winner.
ROWS = pd.DataFrame(
    {
        "trial_id": ["a", "b", "b", "b", "c"],
        "epoch": [1, 1, 2, 3, 1],
        "val_acc": [0.40, 0.45, 0.60, 0.70, 0.30],
    }
)
SUMMARY = pd.DataFrame(
    {
        "trial_id": ["b", "a", "c"],
        "best_val_acc": [0.70, 0.40, 0.30],
        "config.optimizer.lr": [0.01, 0.003, 0.0001],
    }
)


def test_the_winner_is_compared_at_the_epoch_the_base_trial_reached() -> None:
    found = base_comparison(ROWS, SUMMARY, {"optimizer.lr": 0.003}, Objective.of("val_acc"))
    assert found is not None
    assert (found.base_trial_id, found.best_trial_id, found.epoch) == ("a", "b", 1)
    assert (found.base_value, found.best_value) == (0.40, 0.45)
    assert found.gain == pytest.approx(0.05)
    assert "epoch 1" in found.line() and "+0.0500" in found.line()


def test_a_loss_gain_is_positive_when_the_winner_is_lower() -> None:
    rows = ROWS.rename(columns={"val_acc": "val_loss"})
    summary = SUMMARY.rename(columns={"best_val_acc": "best_val_loss"})
    found = base_comparison(rows, summary, {"optimizer.lr": 0.003}, Objective.of("val_loss"))
    assert found is not None and found.gain == pytest.approx(-0.05)


def test_the_base_as_the_winner_and_no_base_trial() -> None:
    found = base_comparison(ROWS, SUMMARY, {"optimizer.lr": 0.01}, Objective.of("val_acc"))
    assert found is not None and found.gain == 0 and "is the search's best" in found.line()
    assert base_comparison(ROWS, SUMMARY, {"optimizer.lr": 0.5}, Objective.of("val_acc")) is None
    assert base_comparison(ROWS, SUMMARY, {"model.width": 8}, Objective.of("val_acc")) is None
