"""The search's gain over every own-data pair measured, against what the data can resolve
(issue #25).

Reads `bench.search.own_data`'s JSON files. For each pair (the one command against the run's
base config trained alone for the same whole budget) it sets the gain in test accuracy
against one standard error of a difference of two accuracies on that folder's test split,
and shows what the search could see on its validation split (`versus_base`: the winner's
lead over the base config's own trial, and the margin it had to clear). Per folder: the
median gain; over every pair: the mean gain and its standard error, the signs, and the sign
test's two-sided p (ties dropped).

    python -m bench.search.gain_summary bench/results/own_data_s19_*.json [...] \
        [--budget 600] [--json PATH]

The test split's size is the one the JSON records (since session 20); for older files it is
read from the folder (its `test/`, or the split the run carves, `trainable.data.scan`), so
those folders must exist here: the variants are rebuilt by `python -m bench.support.variants`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

from bench.support.env import environment, write_json


@dataclass(frozen=True)
class Pair:
    source: str  # the JSON file, and the commit it measured
    commit: str
    folder: str
    test_images: int
    run_acc: float
    default_acc: float
    gain: float
    se: float  # one standard error of the difference, from the test split's size
    retrained: str | None  # "base" or "winner"
    val_lead: float | None  # the search's best trial over the base's, validation split
    val_margin: float | None  # what that lead had to clear to be retrained
    run_wall_s: float
    default_wall_s: float

    @property
    def z(self) -> float:
        return self.gain / self.se if self.se > 0 else 0.0


def count_test_images(folder: Path, cache: dict[Path, int]) -> int:
    """The test split's size, as the run sees it (a `test/` folder, or the carved split)."""
    from trainable.data.scan import scan_folder

    if folder not in cache:
        cache[folder] = len(scan_folder(folder).samples["test"])
    return cache[folder]


def pairs_of(path: Path, budget_s: float, cache: dict[Path, int]) -> list[Pair]:
    data = json.loads(path.read_text())
    if data["budget_s"] != budget_s:
        return []
    out = []
    for r in data["runs"]:
        if r.get("gain") is None:  # an arm that failed: reported by its own file, not here
            continue
        run, default = r["run"], r["default"]
        n = run.get("test_images") or count_test_images(Path(r["folder"]), cache)
        p1, p2 = run["test_accuracy"], default["test_accuracy"]
        vb = run.get("versus_base") or {}
        out.append(
            Pair(
                source=path.name,
                commit=data["environment"]["git_commit"],
                folder=Path(r["folder"]).name,
                test_images=n,
                run_acc=p1,
                default_acc=p2,
                gain=r["gain"],
                se=math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n),
                retrained=run.get("retrained"),
                val_lead=vb.get("gain"),
                val_margin=vb.get("min_gain"),
                run_wall_s=run["wall_s"],
                default_wall_s=default["wall_s"],
            )
        )
    return out


def _pts(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.2f}"


def table(pairs: list[Pair]) -> tuple[list[str], dict[str, Any]]:
    lines = [
        "| folder | test images | pairs | gains (points) | median | 1 SE | search's lead / margin"
        " on validation (points) | retrained |",
        "|---|---|---|---|---|---|---|---|",
    ]
    folders: dict[str, Any] = {}
    for name in dict.fromkeys(p.folder for p in pairs):
        mine = [p for p in pairs if p.folder == name]
        med = statistics.median(p.gain for p in mine)
        se = statistics.median(p.se for p in mine)
        leads = ", ".join(f"{_pts(p.val_lead)} / {_pts(p.val_margin)}" for p in mine)
        kept = ", ".join(p.retrained or "-" for p in mine)
        gains = ", ".join(_pts(p.gain) for p in mine)
        lines.append(
            f"| {name} | {mine[0].test_images:,} | {len(mine)} | {gains} | {_pts(med)} | "
            f"{100 * se:.2f} | {leads} | {kept} |"
        )
        folders[name] = {"pairs": len(mine), "median_gain": med, "median_se": se}
    mean = statistics.fmean(p.gain for p in pairs)
    mean_se = math.sqrt(sum(p.se**2 for p in pairs)) / len(pairs)
    signs = {
        "ahead": sum(p.gain > 0 for p in pairs),
        "level": sum(p.gain == 0 for p in pairs),
        "behind": sum(p.gain < 0 for p in pairs),
    }
    # The sign test (ties dropped): are the signs more one-sided than coin flips? It asks less
    # of the data than the mean does, which the few large gains on small test splits move.
    decided = signs["ahead"] + signs["behind"]
    sign_p = binomtest(signs["ahead"], decided, 0.5).pvalue if decided else 1.0
    overall = {
        "pairs": len(pairs),
        "sign_test_p": float(sign_p),
        "mean_gain": mean,
        "mean_gain_se": mean_se,
        "largest_abs_z": max(abs(p.z) for p in pairs),
        "signs": signs,
    }
    lines.append(
        f"\nevery pair: {len(pairs)} pairs, mean gain {_pts(mean)} ± {100 * mean_se:.2f} points "
        f"(1 SE), {signs['ahead']} ahead / {signs['level']} level / {signs['behind']} behind "
        f"(sign test p = {sign_p:.3f}), the largest |gain| {overall['largest_abs_z']:.2f} SE"
    )
    return lines, {"folders": folders, "overall": overall}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.search.gain_summary", description=__doc__)
    p.add_argument("files", nargs="+", type=Path, help="bench.search.own_data JSON files")
    p.add_argument("--budget", type=float, default=600.0, help="only pairs at this budget, s")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    cache: dict[Path, int] = {}
    pairs = [pair for f in args.files for pair in pairs_of(f, args.budget, cache)]
    if not pairs:
        p.error(f"no pair at a {args.budget:g}-s budget in {', '.join(map(str, args.files))}")
    lines, summary = table(pairs)
    print("\n".join(lines))
    record = {"budget_s": args.budget, "pairs": [asdict(x) | {"z": x.z} for x in pairs]}
    out = write_json("gain_summary", record | summary | {"environment": environment()}, args.json)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
