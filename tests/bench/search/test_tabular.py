"""bench/search/tabular.py: the lookup trainable searched through SearchRun, and the scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.search import lookup, tabular


def test_the_space_decodes_to_table_values_and_the_best_cell_has_no_regret() -> None:
    space = lookup.space_of("hpolib-naval")
    assert space["init_lr"].type == "int" and space["activation_fn_1"].type == "choice"
    bench = lookup.bench_of("hpolib-naval")
    top = {
        k: len(v) - 1 if space[k].type == "int" else v[-1] for k, v in bench.search_space.items()
    }
    config = lookup.decode("hpolib-naval", top)
    assert config["init_lr"] == bench.search_space["init_lr"][-1]
    # every seed's value is one the table holds; the table's best mean scores regret 0
    seeds = lookup._seed_values("hpolib-naval", config)
    assert lookup.observe("hpolib-naval", config, 7) in seeds
    best, worst = lookup.table_stats("nb201-cifar10")
    assert best > worst  # accuracy: higher is better
    nb = lookup.bench_of("nb201-cifar10")
    cells = {key: float(np.mean(v["val_acc"])) for key, v in nb._dataset.items()}
    key = max(cells, key=cells.__getitem__)
    ops = nb.search_space["Op0"]
    best_config = {f"Op{i}": ops[int(c)] for i, c in enumerate(key)}
    assert lookup.regret("nb201-cifar10", best_config) == pytest.approx(0.0)


@pytest.mark.slow
def test_every_arm_runs_its_searches_and_is_scored(tmp_path: Path) -> None:
    out = tmp_path / "tabular.json"
    args = ["--tables", "nb201-cifar10", "hpolib-naval", "--arms", "random", "tpe-liar",
            "optuna-tpe", "--concurrency", "2", "--seeds", "2", "--evals", "25", "--json", str(out)]  # fmt: skip
    assert tabular.main(args) == 0
    r = json.loads(out.read_text())
    assert [(row["table"], row["arm"]) for row in r["rows"]] == [
        (t, a)
        for t in ("nb201-cifar10", "hpolib-naval")
        for a in ("random", "tpe-liar", "optuna-tpe")
    ]
    for row in r["rows"]:
        regrets = row["regret"]["25"]
        # every search ran its 25 evaluations through Tune (or Optuna) and was scored
        assert len(regrets) == 2 and all(0.0 <= x <= 1.0 for x in regrets)
        assert row["concurrency"] == (1 if row["arm"] == "optuna-tpe" else 2)
        assert row["driver_ms_per_trial"] > 0
