"""Reading the tabular benchmark's rows (`bench.search.tabular`): average rank across tables,
the issue's decision rule for the shipped searcher, and the anytime curves.

The decision rule (#27): at the highest concurrency measured, the shipped searcher (`tpe`) must
be within the 95% interval of sequential plain-Optuna TPE (`optuna-tpe`), and beat random
search with the interval excluding 0 on at least 5 of the 7 tables, at 100 evaluations.
Differences are of mean normalised regret, with Welch's 95% interval (the arms' seeds are
independent draws). Imports numpy, scipy and matplotlib only.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SHIPPED = "tpe"
REFERENCE = "optuna-tpe"
RANDOM = ("random", "optuna-random")
DECISION_AT = 100
MIN_TABLES_BEATING_RANDOM = 5


def cell(row: dict[str, Any]) -> str:
    return f"{row['arm']} x{row['concurrency']}"


def regrets(row: dict[str, Any], n: int) -> list[float]:
    return [float(x) for x in row["regret"].get(str(n), [])]


def average_ranks(rows: Sequence[dict[str, Any]], n: int) -> dict[str, float]:
    """Each arm's rank by mean regret after n evaluations, averaged over the tables (1 best;
    ties share their average rank)."""
    from scipy.stats import rankdata

    ranks: dict[str, list[float]] = {}
    for table in dict.fromkeys(r["table"] for r in rows):
        here = [r for r in rows if r["table"] == table and regrets(r, n)]
        if len(here) < 2:
            continue
        means = [statistics.fmean(regrets(r, n)) for r in here]
        for r, rank in zip(here, rankdata(means), strict=True):
            ranks.setdefault(cell(r), []).append(float(rank))
    return {name: statistics.fmean(v) for name, v in ranks.items()}


def difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """mean(a) - mean(b) and the ends of its 95% Welch interval (NaN with under 2 of each)."""
    from scipy.stats import ttest_ind

    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return diff, float("nan"), float("nan")
    if statistics.pstdev(a) == 0 and statistics.pstdev(b) == 0:
        return diff, diff, diff  # no spread at all: the difference is what it is
    ci = ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return diff, float(ci.low), float(ci.high)


def decide(rows: Sequence[dict[str, Any]], n: int = DECISION_AT) -> dict[str, Any]:
    """The decision rule, table by table, and whether the shipped searcher passes it."""
    tables = []
    for table in dict.fromkeys(r["table"] for r in rows):
        here = [r for r in rows if r["table"] == table and regrets(r, n)]
        shipped = [r for r in here if r["arm"] == SHIPPED]
        reference = [r for r in here if r["arm"] == REFERENCE]
        random = [r for r in here if r["arm"] in RANDOM]
        if not shipped:
            continue
        s = max(shipped, key=lambda r: r["concurrency"])
        entry: dict[str, Any] = {"table": table, "shipped": cell(s)}
        if reference:
            d, lo, hi = difference(regrets(s, n), regrets(reference[0], n))
            # "Within the interval": not measurably worse than sequential Optuna.
            entry["vs_reference"] = {"diff": d, "low": lo, "high": hi, "ok": not lo > 0}
        if random:
            r = min(random, key=lambda r: r["concurrency"])
            d, lo, hi = difference(regrets(s, n), regrets(r, n))
            entry["vs_random"] = {"arm": cell(r), "diff": d, "low": lo, "high": hi, "ok": hi < 0}
        tables.append(entry)
    beats = sum(1 for t in tables if t.get("vs_random", {}).get("ok"))
    within = all(t["vs_reference"]["ok"] for t in tables if "vs_reference" in t)
    need = min(MIN_TABLES_BEATING_RANDOM, len(tables))
    return {
        "at": n,
        "tables": tables,
        "beats_random": beats,
        "within_reference": within,
        "passes": bool(tables) and within and beats >= need,
        "needed": need,
    }


def summarise(rows: Sequence[dict[str, Any]], checkpoints: Sequence[int]) -> dict[str, Any]:
    ranks = {str(n): average_ranks(rows, n) for n in checkpoints}
    at = DECISION_AT if DECISION_AT in checkpoints else max(checkpoints)
    decision = decide(rows, at)
    lines = [f"average rank across tables at {n} evaluations: " + ", ".join(
        f"{name} {rank:.2f}" for name, rank in sorted(r.items(), key=lambda kv: kv[1])
    ) for n, r in ranks.items() if r]  # fmt: skip
    for t in decision["tables"]:
        parts = [f"{t['table']} ({t['shipped']})"]
        for key in ("vs_reference", "vs_random"):
            if key in t:
                v = t[key]
                parts.append(
                    f"{key.replace('_', ' ')} {v['diff']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}]"
                    f" {'ok' if v['ok'] else 'NOT MET'}"
                )
        lines.append("  " + "; ".join(parts))
    lines.append(
        f"decision at {at} evaluations: beats random on {decision['beats_random']} of "
        f"{len(decision['tables'])} tables (needs {decision['needed']}), within sequential "
        f"Optuna TPE on all: {decision['within_reference']} -> "
        f"{'PASSES' if decision['passes'] else 'DOES NOT PASS'}"
    )
    return {"average_rank": ranks, "decision": decision, "lines": lines}


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Mean normalised regret against evaluations, one panel per table, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = list(dict.fromkeys(r["table"] for r in rows))
    cols = min(4, len(tables))
    nrows = -(-len(tables) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    for ax, table in zip(axes.flat, tables, strict=False):
        for r in (r for r in rows if r["table"] == table):
            xs = sorted(int(n) for n, v in r["regret"].items() if v)
            ax.plot(xs, [statistics.fmean(regrets(r, n)) for n in xs], label=cell(r))
        ax.set_title(table, fontsize=9)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xlabel("evaluations", fontsize=8)
        ax.set_ylabel("mean normalised regret", fontsize=8)
    for ax in list(axes.flat)[len(tables) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
