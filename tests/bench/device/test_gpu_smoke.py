"""bench/device/gpu.py: the CPU smoke mode runs every section; without a GPU the real mode refuses."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.device import gpu


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_smoke_mode_measures_every_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gpu_smoke.json"
    assert gpu.main(["--smoke", "--seeds", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert gpu.SMOKE_LABEL in printed  # CPU timings are never shown as a GPU result
    r = json.loads(out.read_text())
    assert r["smoke"] is True and r["label"] == gpu.SMOKE_LABEL
    assert r["device_name"] == "cpu" and r["environment"]["torch"] == torch.__version__

    c = r["ceilings"]
    assert _positive(c["matmul_bf16_tflops"]) and _positive(c["copy_gb_per_s"])
    # The FLOP fraction is held against the matmul rate of the dtype training runs in.
    assert r["flop_ceiling_dtype"] == r["autocast_dtype"]
    assert all(_positive(v) for v in c["matmul_tflops_by_dtype"].values())
    assert r["flop_ceiling_dtype"] in c["matmul_tflops_by_dtype"]

    f = r["flops"]
    assert _positive(f["params"]) and _positive(f["forward_flops_per_image"])
    # Backward costs about twice the forward, so a training step is 2-4x the forward pass.
    assert 2 * f["forward_flops_per_image"] < f["train_flops_per_image"]
    assert f["train_flops_per_image"] < 4 * f["forward_flops_per_image"]

    e = r["epochs"]
    assert e["epochs"] == 3 and e["warmup_epochs_excluded"] == 1
    assert all(_positive(s) for s in e["epoch_train_s"])
    for key in ("median_epoch_train_s", "images_per_epoch", "images_per_s"):
        assert _positive(e[key]), key
    assert _positive(e["cold_first_epoch_train_s"]) and e["compile_s"] is None
    assert _positive(r["flop_ceiling_fraction"])

    a = r["time_to_accuracy"]
    assert len(a["test_acc_by_epoch"]) == 3
    assert all(0.0 <= acc <= 1.0 for acc in a["test_acc_by_epoch"])
    assert _positive(a["train_s_to_best"]) and _positive(a["run_wall_s"])
    assert a["reached"] == (a["train_s_to_target"] is not None)
    assert a["cum_train_s_by_epoch"] == sorted(a["cum_train_s_by_epoch"])

    sd = r["seeds"]
    assert sd["seeds"] == [0, 1] and sd["final_test_acc"][0] == a["test_acc_by_epoch"][-1]
    assert len(sd["runs"]) == 1 and len(sd["runs"][0]["test_acc_by_epoch"]) == 3
    assert min(sd["final_test_acc"]) <= sd["median_final_test_acc"] <= max(sd["final_test_acc"])

    h = r["host_syncs_per_epoch"]
    assert h["train"]["batches"] == 384 // 64 and h["evaluation"]["batches"] == 1
    for phase in ("train", "evaluation"):
        # On the CPU copies are invisible (all host memory) and CUDA's counter is off; a read
        # of a device value into Python is visible, and the hot loops make none.
        assert h[phase]["reads"] == 0 and h[phase]["data_dependent_shapes"] == 0, h[phase]
        assert h[phase]["cuda_syncs"] is None

    assert [row["trials"] for row in r["packing"]] == [1, 2]
    assert r["packing_setup"]["timed_epochs"] == 1
    for row in r["packing"]:
        for key in ("images_per_s_total", "images_per_s_per_trial_median", "window_s"):
            assert _positive(row[key]), (row["trials"], key)
        assert row["memory_fraction"] == 1 / row["trials"]
    assert r["packing"][0]["speedup_vs_1"] == 1.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_without_cuda_the_real_mode_refuses_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert gpu.main(["--data-root", "data"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == gpu.NO_GPU and captured.out == ""
