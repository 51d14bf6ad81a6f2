"""Reading finished (or stopped) results folders: `tuner list`, `tuner show`, and the report's data.

A results folder is recognised by the two files `tuner run` writes before the first trial
starts: `search_space.yaml` (the validated spec) and `manifest.json` (provenance and, once the
search ends, its outcome and `status`). Everything else is optional here, because a folder can
be listed while its search is still running or after it was interrupted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from trainable.errors import UserError
from trainable.vocab import REASON, TRIAL_ID, Objective
from trainable.model.cost import COST_KEYS
from tuner.results.constraints import FEASIBLE
from tuner.results.layout import ResultsDir
from tuner.results.records import Outcome, read_outcome
from tuner.spec import SearchSpec, validate_spec

# How the messages below name the two files that make a folder an experiment.
_MARKERS = "search_space.yaml and manifest.json"


@dataclass(frozen=True)
class Experiment:
    path: Path
    spec: SearchSpec
    manifest: dict[str, Any]
    where: str = ""  # how messages name it: the bucket URI, or the folder

    def __post_init__(self) -> None:
        if not self.where:
            object.__setattr__(self, "where", str(self.path))

    @property
    def results(self) -> ResultsDir:
        return ResultsDir(self.path)

    @property
    def objective(self) -> Objective:
        return self.spec.scheduler.objective

    @property
    def metric(self) -> str:
        return self.spec.scheduler.metric

    @property
    def mode(self) -> str:
        return self.spec.scheduler.mode

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "unknown"))

    @property
    def outcome(self) -> Outcome | None:
        """The finished search's outcome (None before it finished, or when a damaged or much
        older manifest lacks its fields: `list` and `show` then print '-', not a traceback)."""
        try:
            return read_outcome(self.manifest)
        except ValidationError:
            return None

    def test_summary(self) -> dict[str, Any] | None:
        path = self.results.test_summary
        return json.loads(path.read_text()) if path.is_file() else None


def is_experiment(path: Path) -> bool:
    return ResultsDir(path).is_experiment()


def open_experiment(path: Path, where: str = "") -> Experiment:
    """The experiment in `path`, or a one-line UserError saying what is wrong with the path;
    `where` names it in messages when `path` is a bucket's working copy."""
    if not path.exists():
        raise UserError(f"{path} does not exist; pass a results folder (see: python -m tuner list)")
    if not path.is_dir():
        raise UserError(f"{path} is a file; pass the results folder that 'tuner run' created")
    if not is_experiment(path):
        hint = " (it holds experiments: pass one of them)" if find_experiments(path) else ""
        raise UserError(
            f"{path} is not a search results folder (no {_MARKERS}){hint}; "
            "see: python -m tuner list"
        )
    files = ResultsDir(path)
    try:
        spec = validate_spec(yaml.safe_load(files.spec.read_text()), str(files.spec))
        manifest = json.loads(files.manifest.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: unreadable {_MARKERS}: {err}") from err
    return Experiment(path.resolve(), spec, manifest, where)


def find_experiments(root: Path) -> list[Path]:
    """Experiments directly under `root` and one level deeper (`make run` nests a timestamp)."""
    if not root.is_dir():
        return []
    found = []

    def folders(parent: Path) -> list[Path]:
        # Hidden folders are a run's staging copy before it appears under its name.
        return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))

    for child in folders(root):
        if is_experiment(child):
            found.append(child)
        else:
            found += [p for p in folders(child) if is_experiment(p)]
    return found


def trial_table(exp: Experiment) -> pd.DataFrame:
    """One row per trial, best first, as the search wrote it to `summary.csv`.

    Columns: trial_id, status, epochs, best_<metric>, `config.<key>` for each searched key,
    with constraints the measured costs and `feasible`, then reason (last, as it is the only
    long text).
    """
    path = exp.results.summary
    if not path.is_file():
        raise UserError(
            f"{exp.where} has no {path.name} yet (status: {exp.status}); the tables are written "
            f"when the search ends: finish it with 'python -m tuner resume {exp.where}'"
        )
    summary = pd.read_csv(path, dtype={TRIAL_ID: str})
    best_col = f"best_{exp.metric}"
    keys = [f"config.{k}" for k in exp.spec.space if f"config.{k}" in summary.columns]
    # With constraints: the measured costs and whether the trial met them all.
    costs = [c for c in (*COST_KEYS, FEASIBLE) if c in summary.columns]
    table = summary.reindex(
        columns=[TRIAL_ID, "status", "epochs", best_col, *keys, *costs, REASON]
    )
    table[REASON] = table[REASON].fillna("")
    # Feasible trials first when there are constraints: the first row is the winner's.
    by, ascending = [best_col], [exp.objective.ascending]
    if FEASIBLE in table.columns:
        by, ascending = [FEASIBLE, best_col], [False, exp.objective.ascending]
    return table.sort_values(by, ascending=ascending, na_position="last").reset_index(drop=True)


def read_rows(exp: Experiment) -> pd.DataFrame:
    """Every reported epoch; a UserError if the search has not written its tables yet."""
    path = exp.results.trials
    if not path.is_file():
        raise UserError(
            f"{exp.where} has no {path.name} yet (status: {exp.status}); the tables are written "
            f"when the search ends: finish it with 'python -m tuner resume {exp.where}'"
        )
    rows = pd.read_parquet(path)
    if not rows.empty:
        rows[TRIAL_ID] = rows[TRIAL_ID].astype(str)
    return rows


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def overview(exp: Experiment) -> dict[str, str]:
    """The headline facts of one experiment, formatted; '-' where the search has not told yet."""
    m, o = exp.manifest, exp.outcome
    test = exp.test_summary()
    return {
        "name": exp.spec.name,
        "date": str(m.get("started_at", "-")).replace("T", " "),
        "status": exp.status,
        "trials": _fmt(o and o.trials, "d"),
        f"best {exp.metric}": _fmt(o and o.best_value, ".4f"),
        "test acc": (
            f"{test['test_accuracy_mean']:.2%} ± {test['test_accuracy_std']:.2%}" if test else "-"
        ),
    }


def list_text(root: Path | list[ResultsDir]) -> str:
    """The experiments in a folder, or those a bucket listing fetched (`tuner.results.bucket.find`)."""
    if isinstance(root, Path):
        if not root.exists():
            raise UserError(
                f"{root} does not exist; pass the folder your searches store results in"
            )
        if not root.is_dir():
            raise UserError(f"{root} is a file; pass the folder your searches store results in")
        found = [ResultsDir(p) for p in find_experiments(root)]
        if not found:
            return f"no experiments under {root} (a results folder holds {_MARKERS})"
    elif not root:
        return f"no experiments there (a results folder holds {_MARKERS})"
    else:
        found = root
    records = []
    for results in found:
        try:
            record = overview(open_experiment(results.path, results.where))
        except UserError as err:  # one broken folder must not hide the others
            record = {"name": results.path.name, "status": f"unreadable: {err}"}
        record["path"] = results.where
        records.append(record)
    # Experiments with different metrics share one table: best val_acc and val_loss columns.
    table = pd.DataFrame(records).fillna("-")
    return table.to_string(index=False)


def show_text(results: ResultsDir, top: int = 5) -> str:
    exp = open_experiment(results.path, results.where)
    lines = [f"{k:>14}: {v}" for k, v in overview(exp).items()]
    lines.append(f"{'results':>14}: {exp.where}")
    provenance = exp.manifest.get("data_provenance")
    if provenance:
        lines.append(f"{'data':>14}: {provenance}")
    if exp.results.summary.is_file():
        table = trial_table(exp)
        counts = table["status"].value_counts().to_dict()
        lines.append(f"{'by status':>14}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        shown = table.head(top).rename(columns=lambda c: c.removeprefix("config."))
        lines += ["", f"top {len(shown)} trials by {exp.metric} ({exp.mode}):"]
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    else:
        lines.append(
            f"\nno {exp.results.summary.name} yet: the trial tables are written when the search ends"
        )
    best = exp.results.best_config()
    if best.is_file():
        lines += ["", f"best config ({best}):", best.read_text().rstrip()]
    else:
        lines += ["", f"no {best.name} yet: it is written after the best trial is retrained"]
    return "\n".join(lines)
