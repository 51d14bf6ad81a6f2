"""bench/search/tune_overhead.py: the smoke run measures both checkpoint policies, consistently."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.search import tune_overhead

pytestmark = pytest.mark.slow


def test_smoke_run_writes_both_policies_against_the_outside_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tune_overhead.json"
    assert tune_overhead.main(["--smoke", "--json", str(out)]) == 0
    assert tune_overhead.SMOKE_LABEL in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["label"] == tune_overhead.SMOKE_LABEL and r["environment"]["cpu"]
    (row,) = r["rows"]
    assert row["train_size"] >= 64 and row["outside_wall_s"] > 0
    for name in tune_overhead.POLICIES:
        i = row[name]
        assert i["overhead"] == pytest.approx(i["wall_s"] / row["outside_wall_s"] - 1)
        for key in ("train_s", "evaluation_s", "checkpoint_save_s", "trial_startup_s"):
            assert math.isfinite(i[key]) and i[key] >= 0, (name, key)
        assert math.isfinite(i["report_and_copy_s"]) and i["tune_driver_s"] > 0, name
