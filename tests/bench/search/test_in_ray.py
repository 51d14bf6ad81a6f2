"""bench/search/in_ray.py: the same final training, plain and as a Ray task with the dashboard
on and off, each arm timed epoch by epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.search.in_ray import ARMS, run_arms, table
from bench.support.specs import tiny_spec


@pytest.mark.slow
def test_every_arm_trains_the_same_config_and_is_timed(tmp_path: Path) -> None:
    raw = tiny_spec("in-ray", str(tmp_path))
    rows = run_arms(raw, epochs=2, rounds=1)
    assert [r["arm"] for r in rows] == list(ARMS)
    for row in rows:
        assert len(row["epoch_s"]) == 2 and all(t > 0 for t in row["epoch_s"])
        assert row["steady_epoch_s"] > 0
        # only the arm that probes first knows the epoch its probe planned
        assert ("probe_epoch_s" in row) == (row["arm"] == "ray-after-probe")
        assert row.get("probe_epoch_s", 1.0) > 0
    lines = table(rows).splitlines()
    assert lines[2].startswith("| plain |") and lines[2].endswith("| 1.000x |")
    assert [line.split("|")[1].strip() for line in lines[2:]] == list(ARMS)


@pytest.mark.slow
def test_a_subset_of_the_arms_is_compared_with_plain(tmp_path: Path) -> None:
    raw = tiny_spec("in-ray", str(tmp_path))
    rows = run_arms(raw, epochs=2, rounds=1, arms=("plain", "ray-after-probe"))
    assert [r["arm"] for r in rows] == ["plain", "ray-after-probe"]
    assert [line.split("|")[1].strip() for line in table(rows).splitlines()[2:]] == [
        "plain",
        "ray-after-probe",
    ]
