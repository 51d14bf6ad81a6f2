"""The Optuna study on disk: a journal file inside the results folder, the distributions a
search space maps to, repairing a journal cut short, and loading a finished search's study.
Shared by the searcher, the warm start and the report; imports only `tuner.spec` and
`tuner.results`."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend

from tuner.results.layout import ResultsDir
from tuner.spec import Param


def distributions(space: dict[str, Param]) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions keyed by the dotted trainer key."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for key, p in space.items():
        if p.type == "choice":
            out[key] = optuna.distributions.CategoricalDistribution(p.values or [])
        elif p.type == "int":
            out[key] = optuna.distributions.IntDistribution(
                int(p.low or 0), int(p.high or 0), log=p.log
            )
        else:
            out[key] = optuna.distributions.FloatDistribution(
                float(p.low or 0), float(p.high or 0), log=p.type == "loguniform"
            )
    return out


def study_storage(results: ResultsDir) -> optuna.storages.JournalStorage:
    """A file-backed study inside the results folder (`optuna-dashboard <file>` opens it)."""
    backend = JournalFileBackend(str(results.study))
    return optuna.storages.JournalStorage(backend)


def repair_journal(results: ResultsDir) -> int:
    """Cut a partial last record off the study journal; returns the bytes cut.

    The journal is an append-only log of one JSON record per line. An append cut short (a kill,
    a full disk) leaves a line without its newline; the next append would be glued onto it and
    Optuna would skip the glued line, losing that record (a trial it then cannot find)."""
    path = results.study
    if not path.is_file():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep == len(data):
        return 0
    with open(path, "rb+") as fh:
        fh.truncate(keep)
    return len(data) - keep


def load_study(results_dir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=study_storage(ResultsDir(results_dir)))
