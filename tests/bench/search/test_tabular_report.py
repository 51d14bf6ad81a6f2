"""bench/search/tabular_report.py: ranks and the decision rule on rows whose answer is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.search.tabular_report import average_ranks, decide, difference, plot, summarise


def row(table: str, arm: str, conc: int, values: list[float], n: int = 100) -> dict[str, Any]:
    return {"table": table, "arm": arm, "concurrency": conc, "regret": {str(n): values}}


GOOD = [0.001, 0.002, 0.0015, 0.001, 0.002, 0.0012]
BAD = [0.05, 0.04, 0.06, 0.045, 0.055, 0.05]


def tables(n: int, shipped: list[float]) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        t = f"t{i}"
        rows += [row(t, "tpe", 8, shipped), row(t, "optuna-tpe", 1, GOOD),
                 row(t, "optuna-random", 1, BAD)]  # fmt: skip
    return rows


def test_a_searcher_as_good_as_optuna_and_better_than_random_passes() -> None:
    d = decide(tables(7, GOOD))
    assert d["passes"] and d["beats_random"] == 7 and d["within_reference"]
    assert all(t["vs_random"]["high"] < 0 for t in d["tables"])


def test_a_searcher_no_better_than_random_fails() -> None:
    d = decide(tables(7, BAD))
    assert not d["passes"] and d["beats_random"] == 0
    assert not d["within_reference"]  # measurably worse than sequential Optuna


def test_beating_random_on_four_of_seven_tables_is_not_enough() -> None:
    rows = tables(4, GOOD) + [
        r | {"table": f"x{r['table']}"} for r in tables(3, BAD) if r["arm"] != "optuna-tpe"
    ]
    d = decide(rows)
    assert d["beats_random"] == 4 and not d["passes"]


def test_ranks_average_over_tables() -> None:
    rows = [row("a", "tpe", 8, [0.0, 0.0]), row("a", "random", 8, [0.1, 0.2]),
            row("b", "tpe", 8, [0.3, 0.3]), row("b", "random", 8, [0.1, 0.1])]  # fmt: skip
    assert average_ranks(rows, 100) == {"tpe x8": 1.5, "random x8": 1.5}
    assert average_ranks(rows[:2], 100) == {"tpe x8": 1.0, "random x8": 2.0}


def test_difference_interval_and_the_summary_lines(tmp_path: Path) -> None:
    d, lo, hi = difference(GOOD, BAD)
    assert d == pytest.approx(sum(GOOD) / 6 - sum(BAD) / 6) and lo < d < hi < 0
    assert difference([0.0, 0.0], [0.0, 0.0]) == (0.0, 0.0, 0.0)
    s = summarise(tables(7, GOOD), [100])
    assert s["lines"][-1].endswith("PASSES") and "optuna-random x1 3.00" in s["lines"][0]
    assert plot(tables(2, GOOD), tmp_path / "p.png").stat().st_size > 5_000
