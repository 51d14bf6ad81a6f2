"""How wide a model the budget buys on a CPU: the widest whose final training still gets the
recipe's length.

Why width is chosen from the budget: training longer than the recipe's length buys little,
a wider model buys a lot. On CIFAR-10 (JPEG copy, 2-core CPU with native bf16), width 16
trained for 68 epochs in a 10-minute run gave 87.44%; airbench94 (width 64) for its 10
epochs gave 90.85% in 449 s (BENCHMARKS.md). So the planner climbs `CPU_WIDTHS` while the
final training, with the whole machine, can still run `recipe_epochs` of every training image
in what the budget leaves after its fixed costs and the smallest search share
(`SMALL_SEARCH_SHARE`).

Speeds are measured, never guessed: the next width is measured only when an optimistic
guess (a cost that grows only linearly with width, measured here to grow faster) says it
could fit, so a budget that cannot afford it measures nothing more. Only imports the plan's
constants and functions; the caller passes the measuring function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainable.data.inspect import FolderSummary
from tuner.planning.machine import Machine
from tuner.planning.plan import SMALL_SEARCH_SHARE, fixed_costs
from tuner.planning.recipe import CPU_WIDTHS, recipe_epochs


@dataclass(frozen=True)
class WidthChoice:
    width: int
    whole_images_per_s: float  # the final training's speed at `width`, measured
    lines: tuple[str, ...]  # why the climb stopped, for the user


def recipe_fits(
    data: FolderSummary,
    machine: Machine,
    budget_s: float,
    whole_images_per_s: float,
    elapsed_s: float,
) -> bool:
    """Whether the final training at this speed gets the recipe's length and the search
    still gets its smallest share."""
    fixed = fixed_costs(data, machine, budget_s, whole_images_per_s, elapsed_s)
    avail = budget_s - fixed.total_s
    need_s = recipe_epochs(data.num_train) * data.num_train / whole_images_per_s
    return need_s <= (1 - SMALL_SEARCH_SHARE) * avail


def choose_width(
    data: FolderSummary,
    machine: Machine,
    budget_s: float,
    whole_speed: Callable[[int], float],
    elapsed: Callable[[], float],
) -> WidthChoice:
    """The widest of CPU_WIDTHS that fits (`recipe_fits`), CPU_WIDTHS[0] at least.

    `whole_speed(width)` measures training images/s with the whole machine; `elapsed()` is
    the time the run has spent so far (measuring counts against the budget)."""
    width = CPU_WIDTHS[0]
    speed = whole_speed(width)
    lines: list[str] = []
    for wider in CPU_WIDTHS[1:]:
        guess = speed * width / wider
        if not recipe_fits(data, machine, budget_s, guess, elapsed()):
            break
        measured = whole_speed(wider)
        if not recipe_fits(data, machine, budget_s, measured, elapsed()):
            lines.append(f"width {wider} does not fit this budget")
            break
        width, speed = wider, measured
    epochs = recipe_epochs(data.num_train)
    if recipe_fits(data, machine, budget_s, speed, elapsed()):
        why = f"the widest whose final training gets the recipe's {epochs} epochs in this budget"
    else:
        why = f"the narrowest: this budget buys fewer than the recipe's {epochs} epochs"
    lines.append(f"chosen: width {width}, {why}")
    return WidthChoice(width, speed, tuple(lines))
