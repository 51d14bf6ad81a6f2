"""bench/trainer/engine_overhead.py: the smoke run writes every field, consistently (not timings)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from bench.trainer import engine_overhead
from trainable.training.runtime import cpu_has_native_bf16


def test_smoke_run_writes_both_sides_and_their_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "engine_overhead.json"
    assert engine_overhead.main(["--smoke", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert engine_overhead.SMOKE_LABEL in printed and "trainer / bare" in printed
    r = json.loads(out.read_text())
    assert r["smoke"] is True and r["environment"]["cpu"]
    # precision: auto is bf16 on a CPU with native bf16 (AVX512-BF16, AMX), else float32.
    expected = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert (r["batch_size"], r["steps_per_epoch"], r["precision"]) == (64, 4, expected)
    # 256 training images in 4 batches of 64; 3 trainer epochs, the first left out; the bare
    # loop's warm-up epoch, then one epoch after each trainer epoch (the first left out).
    for name, recorded, excluded in (("trainer", 3, 1), ("bare", 4, 2)):
        s = r[name]
        assert s["images_per_epoch"] == 256, name
        assert len(s["epoch_s"]) == recorded and s["warmup_epochs_excluded"] == excluded, name
        assert all(t > 0 and math.isfinite(t) for t in s["epoch_s"]), name
        assert s["median_epoch_s"] == pytest.approx(statistics.median(s["epoch_s"][excluded:]))
        assert s["images_per_s"] == pytest.approx(256 / s["median_epoch_s"])
    assert r["ratio"] == pytest.approx(r["trainer"]["images_per_s"] / r["bare"]["images_per_s"])
    pairs = [
        (256 / t) / (256 / b)
        for t, b in zip(r["trainer"]["epoch_s"][1:], r["bare"]["epoch_s"][2:], strict=True)
    ]
    assert r["ratio_paired_median"] == pytest.approx(statistics.median(pairs))
    assert r["config"]["model"]["width"] == 8 and r["config"]["dataset"]["name"] == "synthetic"
