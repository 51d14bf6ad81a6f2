"""bench/trainer/optimizer.py runs and shows what the trainer relies on: fused AdamW reads nothing back."""

from __future__ import annotations

import json
from pathlib import Path

from bench.trainer import optimizer


def test_fused_reads_nothing_back_and_the_single_tensor_loop_does(tmp_path: Path) -> None:
    out = tmp_path / "optimizer.json"
    assert optimizer.main(["--steps", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"].split()[0] for r in rows] == ["smallnet", "resnet9", "fastnet"]
    for r in rows:
        assert r["fused_reads_per_step"] == 0
        # On the CPU the other two read each parameter tensor's step counter every step.
        assert r["single-tensor_reads_per_step"] > 0 and r["foreach_reads_per_step"] > 0
        assert all(r[f"{v}_ms"] > 0 for v in ("fused", "foreach", "single-tensor"))
