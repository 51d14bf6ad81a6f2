"""bench/trainer/recipe_sweep.py: the CPU smoke mode runs each variant per seed, and the plot reads it."""

from __future__ import annotations

import json
from pathlib import Path

from bench.trainer import recipe_sweep


def test_smoke_sweep_records_each_variant_and_plots(tmp_path: Path) -> None:
    out, png = tmp_path / "sweep.json", tmp_path / "curve.png"
    argv = ["--smoke", "--seeds", "2", "--variant", "base:", "--variant", "w4:model.width=4"]
    assert recipe_sweep.main([*argv, "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["smoke"] is True and set(r["variants"]) == {"base", "w4"}
    w4 = r["variants"]["w4"]
    assert w4["sets"] == ["model.width=4"] and [run["seed"] for run in w4["runs"]] == [0, 1]
    for run in w4["runs"]:
        assert len(run["test_acc_by_epoch"]) == r["epochs"] and run["train_s"] > 0
    assert w4["final_test_acc"] == [run["test_acc_by_epoch"][-1] for run in w4["runs"]]
    assert recipe_sweep.main(["--plot", str(out), "--png", str(png), "--anchor", "0.5"]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
