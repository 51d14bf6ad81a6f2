"""bench/trainer/whiten_precision.py: both arms timed by the probe, the layer restored after."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from bench.support.specs import tiny_spec
from bench.trainer.whiten_precision import ARMS, run_arms, table, whitening_in
from trainable.model.layers import Whitening


def test_the_autocast_arm_swaps_the_conv_and_puts_it_back() -> None:
    shipped = Whitening.forward
    with whitening_in("autocast"):
        assert Whitening.forward is nn.Conv2d.forward
    assert Whitening.forward is shipped
    with whitening_in("float32"):
        assert Whitening.forward is shipped


def test_both_arms_are_timed(tmp_path: Path) -> None:
    raw = tiny_spec("whiten", str(tmp_path))
    raw["base"]["model"] = {"name": "fastnet", "width": 8, "depth": 2, "stem": "whiten"}
    rows = run_arms(raw, rounds=1)
    assert [r["arm"] for r in rows] == list(ARMS)
    assert all(r["epoch_s"] > 0 for r in rows)
    lines = table(rows).splitlines()
    assert lines[2].startswith("| autocast |") and lines[2].endswith("| 1.000x |")
