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

from trainable.errors import UserError
from tuner.experiment import MANIFEST_FILE, SPEC_FILE
from tuner.results import SUMMARY_FILE, TRIALS_FILE
from tuner.retrain import BEST_CONFIG, BEST_DIR
from tuner.spec import SearchSpec, validate_spec


@dataclass(frozen=True)
class Experiment:
    path: Path
    spec: SearchSpec
    manifest: dict[str, Any]

    @property
    def metric(self) -> str:
        return self.spec.scheduler.metric

    @property
    def mode(self) -> str:
        return self.spec.scheduler.mode

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "unknown"))

    def test_summary(self) -> dict[str, Any] | None:
        path = self.path / BEST_DIR / "test_summary.json"
        return json.loads(path.read_text()) if path.is_file() else None


def is_experiment(path: Path) -> bool:
    return (path / SPEC_FILE).is_file() and (path / MANIFEST_FILE).is_file()


def open_experiment(path: Path) -> Experiment:
    """The experiment in `path`, or a one-line UserError saying what is wrong with the path."""
    if not path.exists():
        raise UserError(f"{path} does not exist; pass a results folder (see: python -m tuner list)")
    if not path.is_dir():
        raise UserError(f"{path} is a file; pass the results folder that 'tuner run' created")
    if not is_experiment(path):
        hint = " (it holds experiments: pass one of them)" if find_experiments(path) else ""
        raise UserError(
            f"{path} is not a search results folder (no {SPEC_FILE} and {MANIFEST_FILE}){hint}; "
            "see: python -m tuner list"
        )
    try:
        spec = validate_spec(yaml.safe_load((path / SPEC_FILE).read_text()), str(path / SPEC_FILE))
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: unreadable {SPEC_FILE} or {MANIFEST_FILE}: {err}") from err
    return Experiment(path.resolve(), spec, manifest)


def find_experiments(root: Path) -> list[Path]:
    """Experiments directly under `root` and one level deeper (`make run` nests a timestamp)."""
    if not root.is_dir():
        return []
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if is_experiment(child):
            found.append(child)
        else:
            found += sorted(p for p in child.iterdir() if p.is_dir() and is_experiment(p))
    return found


def trial_table(exp: Experiment) -> pd.DataFrame:
    """One row per trial, best first, computed from every epoch in `trials.parquet`.

    Columns: trial_id, status, epochs, best_<metric>, `config.<key>` for each searched key,
    then reason (when summary.csv has one; last, as it is the only long text).
    Trials that errored before reporting an epoch have no rows in trials.parquet; they are
    taken from summary.csv so that the status counts stay complete.
    """
    rows = read_rows(exp)
    best_col = f"best_{exp.metric}"
    keys = [f"config.{k}" for k in exp.spec.space]
    if rows.empty:
        table = pd.DataFrame(columns=["trial_id", "status", "epochs", best_col, *keys])
    else:
        grouped = rows.groupby("trial_id", sort=False)
        table = grouped.agg(
            status=("status", "last"),
            epochs=("epoch", "max"),
            **{best_col: (exp.metric, "max" if exp.mode == "max" else "min")},
        )
        present = [k for k in keys if k in rows.columns]
        table = table.join(grouped[present].first()).reset_index()
        table["epochs"] = table["epochs"].astype(int)
    summary_path = exp.path / SUMMARY_FILE
    if summary_path.is_file():
        summary = pd.read_csv(summary_path, dtype={"trial_id": str})
        missing = summary[~summary["trial_id"].isin(table["trial_id"])]
        if len(missing):
            extra = missing.reindex(columns=table.columns).assign(epochs=0)
            table = pd.concat([table, extra], ignore_index=True)
        if "reason" in summary.columns:  # why a trial ended, where the search recorded it
            reasons = summary.set_index("trial_id")["reason"].fillna("")
            table["reason"] = table["trial_id"].map(reasons).fillna("")
    return table.sort_values(best_col, ascending=exp.mode == "min", na_position="last").reset_index(
        drop=True
    )


def read_rows(exp: Experiment) -> pd.DataFrame:
    """Every reported epoch; a UserError if the search has not written its tables yet."""
    path = exp.path / TRIALS_FILE
    if not path.is_file():
        raise UserError(
            f"{exp.path} has no {TRIALS_FILE} yet (status: {exp.status}); the tables are written "
            f"when the search ends: finish it with 'python -m tuner resume {exp.path}'"
        )
    rows = pd.read_parquet(path)
    if not rows.empty:
        rows["trial_id"] = rows["trial_id"].astype(str)
    return rows


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def overview(exp: Experiment) -> dict[str, str]:
    """The headline facts of one experiment, formatted; '-' where the search has not told yet."""
    m = exp.manifest
    test = exp.test_summary()
    return {
        "name": exp.spec.name,
        "date": str(m.get("started_at", "-")).replace("T", " "),
        "status": exp.status,
        "trials": _fmt(m.get("trials"), "d"),
        f"best {exp.metric}": _fmt(m.get(f"best_{exp.metric}"), ".4f"),
        "test acc": (
            f"{test['test_accuracy_mean']:.2%} ± {test['test_accuracy_std']:.2%}" if test else "-"
        ),
    }


def list_text(root: Path) -> str:
    if not root.exists():
        raise UserError(f"{root} does not exist; pass the folder your searches store results in")
    if not root.is_dir():
        raise UserError(f"{root} is a file; pass the folder your searches store results in")
    found = find_experiments(root)
    if not found:
        return (
            f"no experiments under {root} (a results folder holds {SPEC_FILE} and {MANIFEST_FILE})"
        )
    records = []
    for path in found:
        try:
            record = overview(open_experiment(path))
        except UserError as err:  # one broken folder must not hide the others
            record = {"name": path.name, "status": f"unreadable: {err}"}
        record["path"] = str(path)
        records.append(record)
    # Experiments with different metrics share one table: best val_acc and val_loss columns.
    table = pd.DataFrame(records).fillna("-")
    return table.to_string(index=False)


def show_text(path: Path, top: int = 5) -> str:
    exp = open_experiment(path)
    lines = [f"{k:>14}: {v}" for k, v in overview(exp).items()]
    lines.append(f"{'results':>14}: {exp.path}")
    provenance = exp.manifest.get("data_provenance")
    if provenance:
        lines.append(f"{'data':>14}: {provenance}")
    if (exp.path / TRIALS_FILE).is_file():
        table = trial_table(exp)
        counts = table["status"].value_counts().to_dict()
        lines.append(f"{'by status':>14}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        shown = table.head(top).rename(columns=lambda c: c.removeprefix("config."))
        lines += ["", f"top {len(shown)} trials by {exp.metric} ({exp.mode}):"]
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    else:
        lines.append(f"\nno {TRIALS_FILE} yet: the trial tables are written when the search ends")
    best = exp.path / BEST_CONFIG
    if best.is_file():
        lines += ["", f"best config ({best}):", best.read_text().rstrip()]
    else:
        lines += ["", f"no {BEST_CONFIG} yet: it is written after the best trial is retrained"]
    return "\n".join(lines)
