"""bench.search.trial_setup: the overhead figures from a search's rows, and a real tiny run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench.search.trial_setup import breakdown, main
from bench.support.specs import tiny_spec


def test_set_up_is_the_first_reports_extra_over_a_later_reports() -> None:
    # trial a: 3 epochs of 2 s; its first report came 1.5 s after the epoch (and a 0.1 s
    # checkpoint), the later ones 0.1 s after; trial b: cut after one epoch, 1.1 s extra.
    rows = pd.DataFrame(
        {
            "trial_id": ["a", "a", "a", "b"],
            "training_iteration": [1, 2, 3, 1],
            "epoch_s": [2.0, 2.0, 2.0, 2.0],
            "checkpoint_s": [0.1, 0.0, None, 0.0],
            "time_this_iter_s": [3.6, 2.1, 2.1, 3.1],
        }
    )
    out = breakdown(rows, wall_s=6.0, slots=2)
    assert out["trials"] == 2 and out["epochs"] == 4 and out["epoch_s_sum"] == 8.0
    assert out["overhead"] == pytest.approx(6.0 / 4.0 - 1)
    assert out["per_later_epoch_s"] == pytest.approx(0.1)
    assert out["setup_s"] == pytest.approx([1.4, 1.0])
    assert out["setup_s_median"] == pytest.approx(1.2)


@pytest.mark.slow
def test_the_bench_breaks_down_a_real_search(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec("tiny", "results", num_samples=3)))
    out = tmp_path / "trial_setup.json"
    assert main(["--spec", str(spec), "--seeds", "0", "--json", str(out)]) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["trials"] == 3 and run["epochs"] >= 3 and run["search_wall_s"] > 0
    assert run["overhead"] > -1 and all(math.isfinite(s) for s in run["setup_s"])
