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
    args = ["--tables", "nb201-cifar10", "hpolib-naval", "--arms", "random", "tpe",
            "optuna-tpe", "optuna-random", "optuna-gp", "--concurrency", "2", "--seeds", "3",
            "--ray-seeds",
            "2", "--evals", "25", "--json", str(out)]  # fmt: skip
    assert tabular.main(args) == 0
    r = json.loads(out.read_text())
    arms = ("random", "tpe", "optuna-tpe", "optuna-random", "optuna-gp")
    assert [(row["table"], row["arm"]) for row in r["rows"]] == [
        (t, a) for t in ("nb201-cifar10", "hpolib-naval") for a in arms
    ]
    for row in r["rows"]:
        sequential = row["arm"].startswith("optuna")
        # every search ran its 25 evaluations through Tune (or Optuna) and was scored, on the
        # anytime curve's grid too
        for n in ("5", "10", "25"):
            regrets = row["regret"][n]
            assert len(regrets) == (3 if sequential else 2)
            assert all(0.0 <= x <= 1.0 for x in regrets)
        assert row["concurrency"] == (1 if sequential else 2)
        assert row["driver_ms_per_trial"] > 0
    # HPOLib is scored on log10 MSE: a search's regret is readable, not ~1e-8
    naval = [x for row in r["rows"] if row["table"] == "hpolib-naval" for x in row["regret"]["25"]]
    assert max(naval) > 1e-4
    summary = r["summary"]
    assert set(summary["average_rank"]["25"]) == {"random x2", "tpe x2", "optuna-tpe x1",
                                                  "optuna-random x1", "optuna-gp x1"}  # fmt: skip
    assert [t["table"] for t in summary["decision"]["tables"]] == ["nb201-cifar10", "hpolib-naval"]
    assert out.with_suffix(".png").stat().st_size > 10_000


@pytest.mark.slow
def test_the_constrained_search_bench_scores_both_arms(tmp_path: Path) -> None:
    from bench.search import constrained

    out = tmp_path / "constrained.json"
    args = ["--tables", "nb201-cifar10", "--seeds", "2", "--evals", "20", "--concurrency", "2",
            "--json", str(out)]  # fmt: skip
    assert constrained.main(args) == 0
    r = json.loads(out.read_text())
    assert [row["arm"] for row in r["rows"]] == ["tpe", "random"]
    for row in r["rows"]:
        assert len(row["regret"]) == 2 and all(0 <= x <= 1 for x in row["regret"])
        assert all(0 <= h <= 1 for h in row["hypervolume"])
        assert set(row["limits"]) == {"latency_ms", "params_m"}


def test_nb201_cells_carry_their_costs_and_the_whole_front_scores_one() -> None:
    from bench.search import constrained

    cells = constrained.cells("nb201-cifar10")
    assert len(cells) == 15_625
    assert all(c["latency_ms"] > 0 and c["params_m"] >= 0 for c in cells)
    bounds = constrained.limits("nb201-cifar10", 0.3)
    everything = constrained.score("nb201-cifar10", bounds, [c["config"] for c in cells])
    assert everything["regret"] == 0.0 and everything["hypervolume"] == pytest.approx(1.0)
    nothing = constrained.score("nb201-cifar10", bounds, [])
    assert nothing == {"feasible_found": 0, "regret": 1.0, "hypervolume": 0.0}


@pytest.mark.slow
def test_the_trial_cost_bench_times_windows_and_memory(tmp_path: Path) -> None:
    from bench.search import trial_cost

    out = tmp_path / "trial_cost.json"
    args = ["--trials", "20", "--concurrency", "2", "--window", "10", "--json", str(out)]
    assert trial_cost.main(args) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["completed"] == 20 and row["ms_per_trial"] > 0
    assert len(row["ms_per_trial_by_window"]) == 2 and all(
        w > 0 for w in row["ms_per_trial_by_window"]
    )
    assert row["driver_rss_mib_after"] > 0
