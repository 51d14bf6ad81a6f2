"""The model's width from the budget: measured speeds given, the ladder climbed."""

from __future__ import annotations

import pytest

from tests.tuner.planning.test_plan import LAPTOP, folder
from tuner.planning.plan import Speed, make_plan
from tuner.planning.recipe import CPU_WIDTHS, recipe_epochs
from tuner.planning.width import choose_width, recipe_fits

# Whole-machine images/s by width, as measured on a 2-core AMD EPYC (bf16): the cost grows
# faster than the width.
SPEEDS = {16: 5000.0, 32: 2400.0, 48: 1300.0, 64: 750.0}


def climb(budget_s: float, speeds: dict[int, float] = SPEEDS, **shape: int):
    measured: list[int] = []

    def whole_speed(width: int) -> float:
        measured.append(width)
        return speeds[width]

    choice = choose_width(folder(**shape), LAPTOP, budget_s, whole_speed, lambda: 20.0)
    return choice, measured


def test_ten_minutes_on_cifar_sized_data_buy_width_48_and_width_64_is_not_measured() -> None:
    choice, measured = climb(600)
    assert choice.width == 48 and choice.whole_images_per_s == 1300
    # Width 64 even at an optimistic cost (linear in width) cannot fit: not measured at all.
    assert measured == [16, 32, 48]
    assert "chosen: width 48" in choice.lines[-1]


def test_an_hour_buys_the_widest() -> None:
    choice, measured = climb(3600)
    assert choice.width == CPU_WIDTHS[-1] and measured == list(CPU_WIDTHS)


def test_a_short_budget_keeps_the_narrowest_and_says_why() -> None:
    choice, measured = climb(150)
    assert choice.width == 16 and measured == [16]
    assert "the narrowest" in choice.lines[-1]


def test_a_width_measured_slower_than_guessed_is_refused() -> None:
    choice, measured = climb(600, {**SPEEDS, 32: 600.0})
    assert choice.width == 16 and measured == [16, 32]
    assert choice.lines[0] == "width 32 does not fit this budget"


def test_small_folders_need_more_epochs_for_the_recipe_s_length() -> None:
    assert recipe_epochs(50_000) == 10 and recipe_epochs(2_800) == 179
    # 2,800 images at width 32 need 179 epochs: 4 minutes do not buy them, 15 do.
    small = folder(classes=3, per_class=900)
    assert not recipe_fits(small, LAPTOP, 240, SPEEDS[48], 20)
    assert recipe_fits(small, LAPTOP, 900, SPEEDS[48], 20)


@pytest.mark.parametrize("width", [16, 48])
def test_the_plan_trains_the_chosen_width_for_at_least_the_recipe_s_length(width: int) -> None:
    speed = Speed(trial_images_per_s=SPEEDS[width] / 1.8, retrain_images_per_s=SPEEDS[width])
    plan = make_plan(folder(), LAPTOP, 600, speed, elapsed_s=20, width=width)
    spec = plan.spec()
    assert spec["base"]["model"]["width"] == width
    assert plan.retrain_epochs >= recipe_epochs(50_000)
    assert plan.fixed_s + plan.search_s + plan.retrain_s <= 600
    if width == 48:  # 65% of what is left would be 9 epochs: the recipe's 10 come first
        assert int(0.65 * (600 - plan.fixed_s) / (50_000 / SPEEDS[48])) < 10
        assert plan.retrain_epochs == 10
        assert any("the recipe's length, 10 epochs" in note for note in plan.notes)
