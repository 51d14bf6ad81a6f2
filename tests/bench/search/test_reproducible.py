"""bench.search.reproducible, end to end on the tiny synthetic search (reproducible mode)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from bench.search.reproducible import main
from bench.support.specs import tiny_spec


def test_the_bench_measures_and_finds_its_runs_identical(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec("tiny", "results", num_samples=4)))
    out = tmp_path / "reproducible.json"
    args = ["--spec", str(spec), "--seeds", "0", "--modes", "reproducible", "--json", str(out)]
    assert main(args) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["mode"] == "reproducible" and row["identical_trials"] and row["identical_winner"]
    assert all(w > 0 for w in row["search_wall_s"]) and all(0 < u <= 1 for u in row["slot_use"])
