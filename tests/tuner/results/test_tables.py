"""The winner against the base config's own trial, from the tables a search writes."""

from __future__ import annotations

import pandas as pd
import pytest

from trainable.vocab import Objective
from tuner.results.comparison import effective_images, noise_margin
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


def test_the_noise_margin_is_one_standard_error_of_a_difference_of_accuracies() -> None:
    # 5,000 validation images at 85%: sqrt(2 * 0.85 * 0.15 / 5000) = 0.00714
    assert noise_margin("val_acc", 0.85, 5000) == pytest.approx(0.007141, abs=1e-6)
    assert noise_margin("val_acc", 0.85, 500) > noise_margin("val_acc", 0.85, 5000)
    assert noise_margin("val_acc", 1.0, 5000) == 0.0  # nothing left to gain by chance
    assert noise_margin("val_loss", 0.5, 5000) == 0.0  # no binomial model: any gain counts


def test_a_winner_within_noise_does_not_replace_the_base() -> None:
    objective = Objective.of("val_acc")
    point = {"optimizer.lr": 0.003}
    # b leads a by 0.05 at epoch 1; on 100 images that is within one standard error (0.069)
    tight = base_comparison(ROWS, SUMMARY, point, objective, min_gain=None, val_images=100)
    assert tight is not None and tight.min_gain == pytest.approx(0.0693, abs=1e-4)
    assert not tight.winner_kept and "the final training uses the base config" in tight.line()
    # on 10,000 images the same lead is above it (0.0069)
    wide = base_comparison(ROWS, SUMMARY, point, objective, min_gain=None, val_images=10_000)
    assert wide is not None and wide.winner_kept and "base config" not in wide.line()[-30:]
    # a fixed margin, and 0: any gain
    assert not base_comparison(ROWS, SUMMARY, point, objective, min_gain=0.06).winner_kept  # type: ignore[union-attr]
    assert base_comparison(ROWS, SUMMARY, point, objective, min_gain=0.0).winner_kept  # type: ignore[union-attr]
    # the base as the winner is always kept
    own = base_comparison(ROWS, SUMMARY, {"optimizer.lr": 0.01}, objective, min_gain=0.5)
    assert own is not None and own.winner_kept


def test_balanced_accuracy_counts_its_smallest_classes() -> None:
    labels = [0] * 1000 + [1] * 100 + [2] * 10
    assert effective_images(labels, "val_acc") == 1110
    # 3^2 / (1/1000 + 1/100 + 1/10) = 81.1: the 10-image class dominates the noise
    assert effective_images(labels, "val_balanced_acc") == 81
    assert effective_images([0] * 50 + [1] * 50, "val_balanced_acc") == 100  # equal classes
    assert noise_margin("val_balanced_acc", 0.8, 80) == pytest.approx((2 * 0.8 * 0.2 / 80) ** 0.5)


def test_a_winner_cut_before_the_base_ended_is_compared_where_it_stopped() -> None:
    rows = pd.DataFrame(
        {"trial_id": ["a", "a", "a", "b"], "epoch": [1, 2, 3, 1], "val_acc": [0.3, 0.5, 0.6, 0.7]}
    )
    summary = pd.DataFrame(
        {"trial_id": ["b", "a"], "best_val_acc": [0.7, 0.6], "config.optimizer.lr": [0.01, 0.003]}
    )
    found = base_comparison(rows, summary, {"optimizer.lr": 0.003}, Objective.of("val_acc"))
    assert found is not None and found.epoch == 1 and found.gain == pytest.approx(0.4)


def test_a_pruned_trial_names_every_way_the_search_could_have_cut_it() -> None:
    """A trial still running when searcher.patience ended the search is cut at any epoch;
    its reason once named only the scheduler or the time budget."""
    from types import SimpleNamespace

    from trainable.vocab import Status
    from tuner.results.tables import trial_reason

    cut = SimpleNamespace(error=None, metrics={})
    assert trial_reason(cut, Status.PRUNED, 3, None) == "cut by the scheduler at epoch 3"
    assert trial_reason(cut, Status.PRUNED, 3, 60.0) == (
        "cut by the scheduler or the time budget at epoch 3"
    )
    assert trial_reason(cut, Status.PRUNED, 2, 60.0, patience=True) == (
        "cut by the scheduler, the time budget or patience at epoch 2"
    )
    assert trial_reason(cut, Status.PRUNED, 2, None, patience=True) == (
        "cut by the scheduler or patience at epoch 2"
    )
