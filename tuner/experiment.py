"""One search, end to end: checks, Ray Tune (Optuna TPE + ASHA), tables, retrain, export.

Results folder `<storage_path>/<name>/` is Ray Tune's own experiment directory (readable by
`ExperimentAnalysis` and `Tuner.restore`) plus `search_space.yaml`, `manifest.json`,
`trials.parquet`, `summary.csv`, the Optuna study journal, `best/` and `best_config.yaml`.
"""

from __future__ import annotations

import json
import os
import pickletools
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from trainable.config import read_yaml
from trainable.data import load_splits
from trainable.errors import Interrupted, UserError
from trainable.runtime import cpu_model
from tuner.cluster import (
    RayOptions,
    alive_nodes,
    check_resources,
    check_shared_storage,
    ray_session,
)
from tuner.progress import live_table, summary_line
from tuner.spec import SearchSpec, validate_spec

SPEC_FILE = "search_space.yaml"
MANIFEST_FILE = "manifest.json"


def results_dir_for(spec: SearchSpec) -> Path:
    return (Path(spec.storage_path).expanduser() / spec.name).resolve()


def manifest(spec_raw: dict[str, Any], provenance: str, results_dir: Path) -> dict[str, Any]:
    import ray

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "absent"

    repo = Path(__file__).resolve().parents[1]
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "search_space": spec_raw,
        "results_dir": str(results_dir),
        "packages": {
            p: version(p)
            for p in ("torch", "torchvision", "ray", "optuna", "pandas", "pyarrow", "numpy")
        },
        "git_commit": commit.stdout.strip() or None,
        "hardware": {
            "driver_host": platform.node(),
            "driver_cpu": cpu_model(),
            "cluster_resources": {
                k: v for k, v in ray.cluster_resources().items() if not k.startswith("node:")
            },
            "nodes": len(alive_nodes()),
        },
        "data_provenance": provenance,
        "status": "running",
    }


def _update_manifest(results_dir: Path, **fields: Any) -> None:
    path = results_dir / MANIFEST_FILE
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(fields)
    _write_atomic(path, json.dumps(data, indent=2, default=str))


def _manifest_status(results_dir: Path) -> str | None:
    try:
        return str(json.loads((results_dir / MANIFEST_FILE).read_text()).get("status"))
    except (OSError, ValueError, AttributeError):  # absent or damaged: Tune's state decides
        return None


def _no_world_writable_files() -> None:
    """Results (checkpoints are loaded back into processes) are never world-writable, whatever
    the user's umask; set before Ray starts so its local workers inherit it. Group bits stay
    the user's choice."""
    os.umask(os.umask(0) | 0o002)


def _write_atomic(path: Path, text: str) -> None:
    """A reader (or a kill) never sees half a file: write beside it, then rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def run(spec: SearchSpec, spec_raw: dict[str, Any], opts: RayOptions) -> dict[str, Any]:
    results_dir = results_dir_for(spec)
    if results_dir.exists():
        raise UserError(
            f"results folder {results_dir} already exists; continue it with "
            f"'python -m tuner resume {results_dir}', or change 'name' or --storage-path"
        )
    base = spec.base_config()
    _no_world_writable_files()
    with ray_session(opts):
        check_resources(spec)
        check_shared_storage(results_dir.parent)
        splits = load_splits(base.dataset)  # decoded once here, shared through the object store
        results_dir.mkdir(parents=True)
        _write_atomic(results_dir / SPEC_FILE, yaml.safe_dump(spec_raw, sort_keys=False))
        _write_atomic(
            results_dir / MANIFEST_FILE,
            json.dumps(manifest(spec_raw, splits.provenance, results_dir), indent=2),
        )
        return _search_and_finish(spec, results_dir, splits, restore=False)


def resume(results_dir: Path, opts: RayOptions) -> dict[str, Any]:
    spec_file = results_dir / SPEC_FILE
    if not spec_file.is_file():
        raise UserError(
            f"{results_dir} is not a search results folder (no {SPEC_FILE}); pass the folder 'tuner run' created"
        )
    spec_raw = read_yaml(spec_file)
    if not isinstance(spec_raw, dict):
        raise UserError(f"{spec_file} is not a search-space mapping; the folder is damaged")
    spec = validate_spec(spec_raw, str(spec_file))
    if _manifest_status(results_dir) == "finished":
        raise UserError(
            f"{results_dir} is a finished search: nothing to resume; see "
            f"'python -m tuner show {results_dir}', or start a new run under another name"
        )
    check_tune_state(results_dir)
    _no_world_writable_files()
    with ray_session(opts):
        check_resources(spec)
        check_shared_storage(results_dir.parent)
        splits = load_splits(spec.base_config().dataset)
        return _search_and_finish(spec, results_dir, splits, restore=True)


def check_tune_state(results_dir: Path) -> None:
    """Ray Tune's own state files, read before Ray starts, so that a truncated one (a kill
    during a write, a full disk) is a one-line error naming it rather than a traceback."""
    tuner_pkl = results_dir / "tuner.pkl"
    if not tuner_pkl.is_file():
        raise UserError(
            f"{results_dir} holds no Ray Tune experiment state (no tuner.pkl); start a new run"
        )
    try:
        # Walk the pickle's opcodes to its STOP without executing any of them: catches an empty
        # or cut-off file, and runs nothing from it (Tuner.restore unpickles it later).
        for _ in pickletools.genops(tuner_pkl.read_bytes()):
            pass
    except (OSError, ValueError) as err:
        raise UserError(
            f"{tuner_pkl} is empty or corrupt ({type(err).__name__}); this search cannot be "
            "resumed: its finished trials stay in their folders; start a new run under a new name"
        ) from err
    for state in sorted(results_dir.glob("experiment_state-*.json")):
        try:
            json.loads(state.read_text())
        except (OSError, ValueError) as err:
            raise UserError(
                f"{state} is truncated or corrupt ({type(err).__name__}); move it aside to resume "
                "from the previous state file, or start a new run"
            ) from err


def _trial_name(trial: Any) -> str:
    return f"trial-{trial.trial_id}"


def _search_and_finish(
    spec: SearchSpec, results_dir: Path, splits: Any, *, restore: bool
) -> dict[str, Any]:
    import ray
    from ray import tune

    from trainable.config import build_config, deep_merge
    from tuner.adapter import trial_function
    from tuner.results import write_tables
    from tuner.retrain import retrain_best
    from tuner.searcher import make_searcher
    from tuner.spec import trial_overrides

    base = spec.base_config()
    data_ref = ray.put(splits)
    res = spec.resources
    trainable = tune.with_resources(
        trial_function(base.to_dict(), data_ref, res.gpu, res.memory_mb),
        {"cpu": res.cpus, "gpu": res.gpu}
        | ({"memory": res.memory_mb * 2**20} if res.memory_mb else {}),
    )
    concurrency = spec.max_concurrent_trials or max(
        1, int(ray.cluster_resources().get("CPU", 1) // spec.resources.cpus)
    )
    # A searcher otherwise keeps a single pending trial, so trials would start one at a time.
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(concurrency))
    # Every epoch checkpoints (so a killed trial loses at most one epoch), which makes Tune
    # snapshot its state often; on local or shared storage that is cheap, so no warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    reporter = live_table(spec)
    t0 = time.perf_counter()
    if restore:
        tuner = tune.Tuner.restore(str(results_dir), trainable=trainable, resume_errored=True)
    else:
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

        s = spec.scheduler
        scheduler = (
            ASHAScheduler(
                time_attr="training_iteration",
                max_t=s.max_t,
                grace_period=s.grace_period,
                reduction_factor=s.reduction_factor,
            )
            if s.kind == "asha"
            else FIFOScheduler()
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=s.metric,
                mode=s.mode,
                search_alg=make_searcher(spec, results_dir),
                scheduler=scheduler,
                num_samples=spec.num_samples,
                max_concurrent_trials=concurrency,
                # `trial-<id>`: short, safe on every filesystem, and the id used everywhere else
                # (folders, the live table, trials.parquet, the report).
                trial_dirname_creator=_trial_name,
                trial_name_creator=_trial_name,
                time_budget_s=spec.time_budget_s,
                # A finished trial's worker takes the next trial: no new process, no second
                # torch import, the dataset already mapped. Matters when ASHA ends many
                # trials after an epoch or two.
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=spec.name,
                storage_path=str(results_dir.parent),
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                progress_reporter=reporter,
                verbose=1,
            ),
        )
    grid = tuner.fit()
    search_s = time.perf_counter() - t0
    # Tune catches Ctrl-C itself, saves its state and returns normally: detect that here.
    unfinished = len(grid) - grid.num_terminated - grid.num_errors
    budget_spent = spec.time_budget_s is not None and search_s >= 0.95 * spec.time_budget_s
    if unfinished > 0 or (len(grid) < spec.num_samples and not budget_spent and not restore):
        _update_manifest(results_dir, status="interrupted")
        raise Interrupted(
            f"search interrupted; its state is saved: continue with 'python -m tuner resume {results_dir}'"
        )
    rows, summary = write_tables(grid, results_dir, spec.scheduler.metric, spec.scheduler.mode)
    search_summary = summary_line(summary, spec.scheduler.metric, search_s)
    print(f"\nsearch done: {search_summary}", flush=True)
    metric_col = f"best_{spec.scheduler.metric}"
    if summary.empty or summary[metric_col].isna().all():
        _update_manifest(results_dir, status="failed")
        raise UserError(
            f"no trial reported a finite {spec.scheduler.metric}; the reasons are in "
            f"{results_dir / 'summary.csv'} (column 'reason')"
        )
    best = grid.get_best_result(
        spec.scheduler.metric, spec.scheduler.mode, scope="all", filter_nan_and_inf=True
    )
    epochs = spec.retrain.epochs or spec.scheduler.max_t
    best_config = build_config(
        deep_merge(
            deep_merge(base.to_dict(), trial_overrides(best.config or {})), {"epochs": epochs}
        )
    )
    t1 = time.perf_counter()
    test = retrain_best(
        best_config,
        results_dir,
        data_ref,
        spec.retrain.seeds,
        spec.resources.cpus,
        spec.resources.gpu,
    )
    outcome = {
        "status": "finished",
        "summary": search_summary,
        "search_wall_s": search_s,
        "retrain_wall_s": time.perf_counter() - t1,
        "trials": len(summary),
        "trial_status_counts": summary["status"].value_counts().to_dict() if len(summary) else {},
        "epochs_spent": len(rows),
        "best_trial_id": str((best.metrics or {}).get("trial_id")),
        f"best_{spec.scheduler.metric}": float(summary[f"best_{spec.scheduler.metric}"].iloc[0]),
        "test_accuracy_mean": test["test_accuracy_mean"],
        "test_accuracy_std": test["test_accuracy_std"],
    }
    _update_manifest(results_dir, **outcome)
    return outcome
