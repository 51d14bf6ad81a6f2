"""How long a run trains: its planned optimizer steps, and a deadline that re-plans them.

A run's schedule (the triangular lr) and lookahead's ramp read how far along the training is
through a `Horizon`. Without a deadline it is `step / total`, exactly as a plain schedule.
With a `Deadline` (a budgeted final training, `trainable train --time-budget`), the run times
its own epochs and, after each, re-plans its total to what still fits before the deadline:
a planned epoch count is a guess made minutes earlier, and this machine's speed drifted
20-30% within minutes (BENCHMARKS.md, "Session 18"), so a final training planned to the
second by a probe still ended 11% past a 10-minute budget or 7% short of it.

Re-planning keeps the schedule continuous: the steps left are stretched or squeezed evenly
over the progress left, so the lr never jumps, and a run re-planned at 40% of its steps keeps
the shape of the plan it started with (warm-up, then the decay to `end_factor` at its new
last step). Only the triangular schedule re-plans; OneCycleLR keeps its planned epochs.

Imports nothing from the rest of the trainer: the engine owns the clock and the epochs.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

# Steady epochs timed before the first re-plan, and the window of recent epochs whose median
# estimates the next ones: at least this many epochs and `WINDOW_S` seconds of them (a small
# folder's 0.3-s epochs vary by +-8% from one to the next; a window of recent epochs still
# follows the machine's drift over minutes).
MIN_TIMED_EPOCHS = 2
WINDOW_EPOCHS = 5
WINDOW_S = 20.0
# The plan moves once it misses the deadline by more than half an epoch or this share of the
# time left. Half an epoch alone moved a 1,000-epoch plan of 0.45-s epochs at most epochs,
# by up to 25 epochs and back (the window's median moving by 1-2%): the same end, reached
# through a wavering schedule. As the time left shrinks, the share tightens to half an epoch.
SLACK = 0.01


class Horizon:
    """The run's total optimizer steps and how far along a step is.

    `virtual(step)` maps a real step onto the plan the run started with (`planned` steps): the
    identity until a re-plan, then a straight line from the step where the plan changed to the
    new last step, which maps onto the planned last. Schedules evaluated at `virtual(step)`
    keep their shape whatever the total becomes."""

    def __init__(self, planned_steps: int) -> None:
        self.planned = max(1, planned_steps)
        self.total = self.planned
        self.anchor_step, self.anchor_virtual = 0, 0.0

    def virtual(self, step: int) -> float:
        if self.total <= self.anchor_step:
            return float(self.planned)
        rate = (self.planned - self.anchor_virtual) / (self.total - self.anchor_step)
        return min(float(self.planned), self.anchor_virtual + (step - self.anchor_step) * rate)

    def progress(self, step: int) -> float:
        """0 at the start, 1 at the last step (of the current plan)."""
        return self.virtual(step) / self.planned

    def replan(self, step: int, total: int) -> None:
        """From `step` on the run ends at `total` steps (>= step)."""
        self.anchor_virtual, self.anchor_step = self.virtual(step), step
        self.total = max(step, total)

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.planned, self.total = int(state["planned"]), int(state["total"])
        self.anchor_step = int(state["anchor_step"])
        self.anchor_virtual = float(state["anchor_virtual"])


@dataclass(frozen=True)
class Deadline:
    """Train until `end_at` (wall-clock seconds, `time.time()`: the trainer may run in another
    process than the caller that set it), in at most `max_epochs` epochs."""

    end_at: float
    max_epochs: int = 10_000


@dataclass
class Pacer:
    """Times a run's epochs against its `deadline` and says, after each, how many it has in
    all. An epoch's time is the wall since the previous one ended: its checkpoint write and
    report included. Epochs before `first_timed` (the first in the process, a whitening
    stem's slower bias epochs) are not timed."""

    deadline: Deadline
    first_timed: int
    durations: list[float] = field(default_factory=list)
    mark: float = field(default_factory=time.time)

    def total_after(self, epoch: int, total: int) -> int:
        now = time.time()
        if epoch >= self.first_timed:
            self.durations.append(now - self.mark)
        self.mark = now
        return replanned_epochs(epoch, total, self.durations, now, self.deadline)


def epoch_estimate(durations: list[float]) -> float | None:
    """The next epochs' seconds: the median of the most recent ones, at least `WINDOW_EPOCHS`
    epochs and `WINDOW_S` seconds of them; None before `MIN_TIMED_EPOCHS` were timed."""
    if len(durations) < MIN_TIMED_EPOCHS:
        return None
    window: list[float] = []
    for d in reversed(durations):
        if len(window) >= WINDOW_EPOCHS and sum(window) >= WINDOW_S:
            break
        window.append(d)
    return statistics.median(window)


def replanned_epochs(
    epoch: int, total: int, durations: list[float], now: float, deadline: Deadline
) -> int:
    """The run's total epochs after `epoch` ended at `now`: the epochs left that fit before the
    deadline at the recent epochs' pace, to the nearest, once the plan misses by more than
    half an epoch or `SLACK` of the time left; and at least one more: the schedule's decay
    and lookahead's last pull happen in the last epoch, so a run past its deadline squeezes
    them into the next one rather than stopping mid-schedule. `total` until enough epochs
    were timed, or once the plan's last epoch was reached (its schedule has decayed)."""
    per = epoch_estimate(durations)
    if per is None or epoch >= total or per <= 0:
        return total
    fit = max(0.0, deadline.end_at - now) / per  # epochs, not rounded
    if abs(fit - (total - epoch)) <= max(0.5, SLACK * fit):
        return total
    return max(epoch + 1, min(deadline.max_epochs, epoch + math.floor(fit + 0.5)))
