"""A search whose results live in an object store (`storage_path: s3://bucket/prefix`).

Ray Tune writes its own part (experiment state, trial folders and checkpoints) straight to
the bucket through `pyarrow.fs`. The project's own files (`ResultsDir.own_files`) need
local semantics: the Optuna journal is appended under a file lock, tables and checkpoints are
written atomically by rename. The driver therefore works in a local copy of them,
`$HPSEARCH_CACHE/results/<hash of the URI>/<name>/`, and publishes it to the bucket:

- at the end of every stage, and when the process exits (finished, stopped or failed);
- the study journal also with every state snapshot Tune uploads during the search
  (`PruneAwareOptunaSearch.save_to_dir`), so the bucket's journal is never behind the
  searcher state that refers to it;
- each retraining seed's run folder when that seed finishes, from whichever node ran it.

The bucket is the truth: `resume`, `show`, `report` and `export` fetch the own files from it
first (the working copy is a cache). What a crash of the driver's machine can lose: the
stage in progress since its start, as on local storage, and a retraining seed's progress
since its start when it resumes on another machine (its per-epoch checkpoints stay local).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from trainable.files import storage
from trainable.errors import UserError
from trainable.data.folder import cache_root
from tuner.results.layout import ResultsDir


def working_copy(remote: str) -> Path:
    """This machine's local copy of the results at `remote`; the same path on every node
    that shares the cache's location."""
    digest = hashlib.sha256(remote.encode()).hexdigest()[:16]
    return cache_root() / "results" / digest / remote.rsplit("/", 1)[-1]


def results_at(location: str | Path) -> ResultsDir:
    """The results folder a command names: a local path, or a URI with its working copy."""
    if storage.is_uri(location):
        remote = storage.check_uri(str(location))
        return ResultsDir(working_copy(remote), remote)
    return ResultsDir(Path(location).expanduser().resolve())


def results_for(storage_path: str, name: str) -> ResultsDir:
    if storage.is_uri(storage_path):
        return results_at(storage.join(storage_path, name))
    return results_at(Path(storage_path) / name)


def exists(results: ResultsDir) -> bool:
    if results.remote is None:
        return results.path.exists()
    return bool(storage.listing(results.remote, depth=1))


def publish(results: ResultsDir, *names: str) -> None:
    """Copy the working copy's own files (or only `names`) to the bucket, the manifest last;
    nothing to do for local results. The retraining runs are left out: each seed publishes
    its own run when it finishes (`publish_run`), from the node that ran it."""
    if results.remote is None:
        return
    for local in [results.path / n for n in names] or results.own_files():
        if not local.exists():
            continue
        # A folder goes up part by part, so that best/runs/ can be left out.
        for part in sorted(local.iterdir()) if local.is_dir() else [local]:
            if part != results.runs:
                storage.upload(part, results.remote_of(part))


def fetch(results: ResultsDir, *, runs: bool = False) -> ResultsDir:
    """Refresh the working copy's own files from the bucket (the retraining runs too if
    `runs`); a UserError if the URI holds no search results."""
    if results.remote is None:
        return results
    files = [rel for rel in storage.listing(results.remote) if results.owned(rel, runs)]
    if not {results.spec.name, results.manifest.name} <= set(files):
        raise UserError(
            f"{results.remote} holds no search results (no search_space.yaml and "
            "manifest.json); see: python -m tuner list <bucket URI>"
        )
    for rel in files:
        storage.download(storage.join(results.remote, rel), results.path / rel)
    return results


def fetch_run(results: ResultsDir, seed: int) -> None:
    """One retraining run's folder from the bucket, when this machine lacks its outcome."""
    run = results.retrain_run(seed)
    if results.remote is None or ResultsDir.run_outcome(run).is_file():
        return
    if storage.exists(results.remote_of(ResultsDir.run_outcome(run))):
        storage.download(results.remote_of(run), run)


def publish_run(results: ResultsDir, seed: int) -> None:
    if results.remote is not None:
        storage.upload(results.retrain_run(seed), results.remote_of(results.retrain_run(seed)))


def has_tune_state(results: ResultsDir) -> bool:
    if results.remote is None:
        return results.tune_state.is_file()
    return storage.exists(results.remote_of(results.tune_state))


def tune_state_copy(results: ResultsDir, into: Path) -> ResultsDir:
    """Tune's state files (`tuner.pkl`, `experiment_state-*.json`) copied from the bucket into
    `into`, to be checked before Ray starts; the results themselves when they are local."""
    if results.remote is None:
        return results
    copy = ResultsDir(into)
    for rel in storage.listing(results.remote, depth=1):
        if rel == copy.tune_state.name or rel.startswith("experiment_state-"):
            storage.download(storage.join(results.remote, rel), into / rel)
    return copy


def find(root: str) -> list[ResultsDir]:
    """The searches under a bucket prefix and one level below (as `tuner list` looks in a
    folder), each fetched into its working copy without the retraining runs."""
    root = storage.check_uri(root)
    storage.check_bucket(root)
    markers = [rel for rel in storage.listing(root, depth=3) if rel.endswith("/manifest.json")]
    found = []
    for rel in markers:
        results = results_at(storage.join(root, rel.removesuffix("/manifest.json")))
        try:
            found.append(fetch(results))
        except UserError:
            continue  # a manifest without its spec: a folder of something else
    return found


def discard(results: ResultsDir) -> None:
    """Remove the working copy (the bucket keeps everything)."""
    if results.remote is not None:
        shutil.rmtree(results.path, ignore_errors=True)
