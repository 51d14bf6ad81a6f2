"""The deadline (trainable/training/horizon.py): the re-planning arithmetic, and a real run
that re-plans its epochs, keeps its schedule whole and resumes at its last plan."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.conftest import Interrupted, stop_at
from trainable.config import TrainConfig, TriangularConfig
from trainable.training.engine import train
from trainable.training.horizon import (
    Deadline,
    Horizon,
    epoch_estimate,
    replanned_epochs,
)
from trainable.training.optim import triangular
from trainable.vocab import EPOCHS_TOTAL

TinyConfig = Callable[..., TrainConfig]
FAR = Deadline(end_at=time.time() + 10**6)


def test_a_horizon_never_replanned_is_the_plain_step_count() -> None:
    h = Horizon(100)
    assert [h.virtual(s) for s in (0, 1, 37, 100)] == [0.0, 1.0, 37.0, 100.0]
    assert h.progress(25) == 0.25
    cfg = TriangularConfig()
    plain, followed = triangular(100, cfg), triangular(100, cfg, h)
    assert all(plain(s) == followed(s) for s in range(101))


@pytest.mark.parametrize("new_total", [60, 100, 160])
def test_a_replan_keeps_the_schedule_continuous_and_ends_it_at_the_new_last_step(
    new_total: int,
) -> None:
    cfg = TriangularConfig(start_factor=0.2, peak_fraction=0.25, end_factor=0.05)
    h = Horizon(100)
    factor = triangular(100, cfg, h)
    before = factor(40)
    h.replan(40, new_total)
    assert factor(40) == pytest.approx(before)  # no jump where the plan changed
    assert h.progress(new_total) == pytest.approx(1.0)
    assert factor(new_total) == pytest.approx(cfg.end_factor)
    # the rest of the decay is stretched or squeezed evenly over the steps left
    steps = [factor(s) for s in range(40, new_total + 1)]
    gaps = [a - b for a, b in itertools.pairwise(steps)]
    assert max(gaps) == pytest.approx(min(gaps)) and min(gaps) > 0


def test_a_horizon_replanned_twice_round_trips_its_state() -> None:
    h = Horizon(100)
    h.replan(30, 80)
    h.replan(50, 90)
    other = Horizon(100)
    other.load_state_dict(h.state_dict())
    assert [other.virtual(s) for s in range(91)] == [h.virtual(s) for s in range(91)]
    assert h.virtual(90) == pytest.approx(100.0) and h.total == 90


def test_the_epoch_estimate_is_a_median_of_recent_epochs() -> None:
    assert epoch_estimate([2.0]) is None  # one timed epoch is not enough
    # one slow epoch (a checkpoint write, a noisy neighbour) moves the median little
    assert epoch_estimate([1.0, 1.0, 9.0, 1.0, 1.0]) == 1.0
    # at least 5 epochs and 20 s of them: the old 10-s epochs have left the window
    assert epoch_estimate([10.0] * 5 + [5.0] * 5) == 5.0
    # short epochs: the window reaches back 20 s, not 5 epochs
    assert epoch_estimate([2.0] * 10 + [0.5] * 5) == 2.0
    assert epoch_estimate([2.0] * 10 + [0.5] * 41) == 0.5


def test_replanning_follows_the_pace_and_keeps_to_its_limits() -> None:
    now = 1000.0
    in_60s = Deadline(end_at=now + 60.0)
    # 10 s epochs: 6 more fit, whatever was planned
    assert replanned_epochs(4, 8, [10.0, 10.0], now, in_60s) == 10
    assert replanned_epochs(4, 20, [10.0, 10.0], now, in_60s) == 10
    # to the nearest epoch: 5.4 left -> 5, 5.6 -> 6
    assert replanned_epochs(4, 8, [60 / 5.4] * 2, now, in_60s) == 9
    assert replanned_epochs(4, 8, [60 / 5.6] * 2, now, in_60s) == 10
    # a long plan moves only when it misses by more than 1% of the time left: 1,000 epochs
    # of 0.06 s fit; 1,008 left in the plan stay, 1,012 move to 1,000
    short = [0.06, 0.06]
    assert replanned_epochs(4, 4 + 1008, short, now, in_60s) == 4 + 1008
    assert replanned_epochs(4, 4 + 992, short, now, in_60s) == 4 + 992
    assert replanned_epochs(4, 4 + 1012, short, now, in_60s) == 4 + 1000
    assert replanned_epochs(4, 4 + 988, short, now, in_60s) == 4 + 1000
    # not before two epochs were timed, not after the plan's last epoch
    assert replanned_epochs(4, 8, [10.0], now, in_60s) == 8
    assert replanned_epochs(8, 8, [10.0, 10.0], now, in_60s) == 8
    # past the deadline: one more epoch, to end the schedule; capped by max_epochs
    assert replanned_epochs(4, 8, [10.0, 10.0], now + 100, in_60s) == 5
    capped = Deadline(end_at=now + 10**5, max_epochs=12)
    assert replanned_epochs(4, 8, [10.0, 10.0], now, capped) == 12


def test_a_run_with_time_to_spare_trains_more_epochs_and_ends_its_schedule(
    recipe_config: TinyConfig, tmp_path: Path
) -> None:
    """The whole recipe (triangular schedule, lookahead, whitening bias epochs): a run planned
    for 4 epochs with a far deadline grows to its cap of 7, its lr ends where a plain 7-epoch
    run's does, and lookahead's last pull happens at its new last step."""
    cfg = recipe_config(epochs=4, deterministic=True)
    seen: list[dict[str, float]] = []
    result = train(
        cfg,
        tmp_path / "run",
        report=lambda m, _d: seen.append(m),
        deadline=Deadline(FAR.end_at, max_epochs=7),
    )
    assert result.epochs_planned == 7 and result.epochs_run == 7
    # the first re-plan waits for two timed epochs (epoch 1 and the bias epoch are not)
    assert [int(m[EPOCHS_TOTAL]) for m in seen] == [4, 4, 7, 7, 7, 7, 7]
    assert "re-planned" in result.reason
    plain = train(recipe_config(epochs=7), tmp_path / "plain", report=lambda *_: None)
    assert seen[-1]["lr"] == pytest.approx(plain.history[-1]["lr"])
    state = torch.load(tmp_path / "run" / "last" / "checkpoint.pt", weights_only=True)
    assert state["config"]["epochs"] == 7 and state["planned_epochs"] == 4
    assert state["lookahead"]["steps"] == 7 * 8
    assert all(torch.equal(state["model"][k], v) for k, v in state["lookahead"]["ema"].items())
    assert "epochs: 7" in (tmp_path / "run" / "config.yaml").read_text()


def test_a_run_past_its_deadline_squeezes_its_schedule_into_one_more_epoch(
    recipe_config: TinyConfig, tmp_path: Path
) -> None:
    cfg = recipe_config(epochs=9)
    result = train(
        cfg, tmp_path, report=lambda *_: None, deadline=Deadline(end_at=time.time() - 1.0)
    )
    assert result.epochs_run == 4 and result.epochs_planned == 4
    plain = train(recipe_config(epochs=9), tmp_path / "plain", report=lambda *_: None)
    assert result.history[-1]["lr"] == pytest.approx(plain.history[-1]["lr"])


def test_a_replanned_run_killed_midway_resumes_to_its_last_plan(
    recipe_config: TinyConfig, tmp_path: Path
) -> None:
    """The caller resumes with the config it started with and no deadline (the clock does not
    survive a kill): the run finishes the epochs it last planned, schedule included."""
    cfg = recipe_config(epochs=4, deterministic=True)

    with pytest.raises(Interrupted):
        train(cfg, tmp_path, report=stop_at(5), deadline=Deadline(FAR.end_at, max_epochs=7))
    resumed = train(cfg, tmp_path, report=lambda *_: None, resume_from=tmp_path / "last")
    assert resumed.epochs_planned == 7 and [h["epoch"] for h in resumed.history][-1] == 7
    plain = train(recipe_config(epochs=7), tmp_path / "plain", report=lambda *_: None)
    assert resumed.history[-1]["lr"] == pytest.approx(plain.history[-1]["lr"])


def test_a_onecycle_run_keeps_its_epochs_and_says_so(
    tiny_config: TinyConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_config(epochs=3)
    assert cfg.schedule.name == "onecycle"
    result = train(
        cfg, tmp_path, report=lambda *_: None, deadline=Deadline(FAR.end_at, max_epochs=9)
    )
    assert result.epochs_run == 3 and result.epochs_planned == 3
    assert "schedule onecycle cannot be re-planned" in capsys.readouterr().out
