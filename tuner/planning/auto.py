"""`tuner init DIR` and `tuner run --data-root DIR --time-budget T`: the folder inspected, the
machine read, the planned model's speed measured, the run sized and written as a commented
spec. Every step prints what it found, so the user sees why the spec is what it is."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainable.data.inspect import FolderSummary, inspect_folder
from trainable.errors import ConfigError
from tuner.planning.machine import Machine, detect
from tuner.planning.plan import Plan, Speed, make_plan
from tuner.planning.recipe import architecture, base_config
from tuner.planning.search_size import calibration_batch
from tuner.planning.width import choose_width


@dataclass(frozen=True)
class Planned:
    plan: Plan
    data: FolderSummary
    machine: Machine
    speed: Speed

    def spec(self) -> dict[str, Any]:
        return self.plan.spec()

    def yaml(self, written_to: str) -> str:
        return render(self, written_to)


def plan_folder(root: Path, budget_s: float, name: str | None = None) -> Planned:
    t0 = time.perf_counter()
    say(f"inspecting {root} ...")
    data = inspect_folder(root)
    for line in data.lines():
        say(f"  {line}")
    machine = detect()
    say(f"  machine: {machine.line()}")
    from tuner.planning.calibrate import images_per_s, measure

    # BENCHMARKS.md, "Session 16: why the planner's epoch estimate missed 2.4x on 8-px images"
    batch = calibration_batch(data.num_train)
    n = batch * 4
    whole: float | None = None
    width = None
    if not machine.gpus:

        def whole_speed(w: int) -> float:
            arch = architecture(data, machine, w)
            base = base_config(arch, root, n, n // 10, batch)
            speed = images_per_s(base, arch, len(data.classes), machine.cpus, batch)
            say(f"  width {w}: {speed:,.0f} images/s with the whole machine")
            return speed

        say("  measuring widths in turn: the widest whose final training fits is kept ...")
        choice = choose_width(
            data, machine, budget_s, whole_speed, lambda: time.perf_counter() - t0
        )
        for line in choice.lines:
            say(f"  {line}")
        width, whole = choice.width, choice.whole_images_per_s
    arch = architecture(data, machine, width)
    base = base_config(arch, root, n, n // 10, batch)
    speed = measure(base, arch, len(data.classes), machine.cpus, whole, batch)
    say(
        f"  training speed here: {speed.trial_images_per_s:,.0f} images/s per trial, "
        f"{speed.retrain_images_per_s:,.0f} with the whole machine"
    )
    try:
        plan = make_plan(data, machine, budget_s, speed, time.perf_counter() - t0, name, arch.width)
    except ValueError as err:
        raise ConfigError(f"{err}; give a longer --time-budget") from None
    for note in plan.notes:
        say(f"  {note}")
    return Planned(plan, data, machine, speed)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def render(p: Planned, written_to: str) -> str:
    """The spec as YAML under a comment block that says what was found and why."""
    plan = p.plan
    header = [
        f"Search spec for {plan.root}, sized by `python -m tuner init` for a run of "
        f"{plan.budget_s:.0f} s end to end on this machine.",
        f"  run it: python -m tuner run {written_to}",
        "",
        "The data:",
        *(f"  {line}" for line in p.data.lines()),
        f"The machine: {p.machine.line()}",
        f"Measured here: {p.speed.trial_images_per_s:,.0f} training images/s per trial, "
        f"{p.speed.retrain_images_per_s:,.0f} with the whole machine",
        "",
        "How the budget is spent:",
        *(f"  {note}" for note in plan.notes),
        "",
        f"The model: fastnet (airbench94's recipe) at width {plan.arch.width}, "
        f"{plan.arch.image_size} px (the images' median shorter side, capped for the device).",
        "The base config is the search's first trial (searcher.base_first): the winner is the",
        "default unless a searched config beat it on the validation split. The final training",
        "(retrain) refits the winner on every training image for the epochs the budget allows.",
    ]
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header)
    return comments + "\n" + yaml.safe_dump(p.spec(), sort_keys=False)
