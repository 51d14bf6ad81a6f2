"""One search, end to end: checks, Ray Tune (Optuna TPE + ASHA), tables, retrain, export.

Results folder `<storage_path>/<name>/` is Ray Tune's own experiment directory (readable by
`ExperimentAnalysis` and `Tuner.restore`) plus `search_space.yaml`, `manifest.json`,
`trials.parquet`, `summary.csv`, the Optuna study journal, `best/` and `best_config.yaml`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from trainable.data import load_splits
from trainable.errors import DeviceError, Interrupted, UserError
from trainable.runtime import cpu_model
from tuner.spec import SearchSpec, validate_spec

SPEC_FILE = "search_space.yaml"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start Ray in this process
    num_cpus: int | None = None  # local only; default all cores
    dashboard: bool = False
    dashboard_host: str = "127.0.0.1"


def results_dir_for(spec: SearchSpec) -> Path:
    return (Path(spec.storage_path).expanduser() / spec.name).resolve()


def ensure_ray(opts: RayOptions) -> bool:
    """Start (or join) Ray unless already connected; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    context = ray.init(
        address=opts.address,
        num_cpus=opts.num_cpus if opts.address is None else None,
        include_dashboard=opts.dashboard,
        dashboard_host=opts.dashboard_host,
        log_to_driver=True,
        configure_logging=False,
    )
    if opts.dashboard and context.dashboard_url:
        print(
            f"Ray dashboard: http://{context.dashboard_url} (bound to {opts.dashboard_host})",
            flush=True,
        )
    return True


@contextlib.contextmanager
def ray_session(opts: RayOptions) -> Iterator[None]:
    """Ray for the duration of a command; shut down only if this command started it."""
    started = ensure_ray(opts)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def check_resources(spec: SearchSpec) -> None:
    """Refuse requests the cluster can never satisfy: Ray itself only warns and waits forever."""
    import ray

    total = ray.cluster_resources()
    if spec.resources.gpu > 0 and total.get("GPU", 0) == 0:
        raise DeviceError(
            f"each trial asks for {spec.resources.gpu} GPU but this Ray cluster has none; "
            "run search_spaces/quick.yaml, or pass --cpu to run this search on CPUs"
        )
    per_node_cpus = max(
        (n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=0
    )
    if spec.resources.cpus > per_node_cpus:
        raise DeviceError(
            f"each trial asks for resources.cpus={spec.resources.cpus} but the largest node has "
            f"{per_node_cpus:g} CPUs; lower resources.cpus"
        )
    per_node_gpus = max(
        (n["Resources"].get("GPU", 0) for n in ray.nodes() if n["Alive"]), default=0
    )
    if spec.resources.gpu > per_node_gpus:
        raise DeviceError(
            f"each trial asks for {spec.resources.gpu} GPUs but the largest node has {per_node_gpus:g}; lower resources.gpu"
        )


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
            "nodes": len([n for n in ray.nodes() if n["Alive"]]),
        },
        "data_provenance": provenance,
        "status": "running",
    }


def _update_manifest(results_dir: Path, **fields: Any) -> None:
    path = results_dir / MANIFEST_FILE
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(fields)
    path.write_text(json.dumps(data, indent=2, default=str))


def run(spec: SearchSpec, spec_raw: dict[str, Any], opts: RayOptions) -> dict[str, Any]:
    results_dir = results_dir_for(spec)
    if results_dir.exists():
        raise UserError(
            f"results folder {results_dir} already exists; continue it with "
            f"'python -m tuner resume {results_dir}', or change 'name' or --storage-path"
        )
    base = spec.base_config()
    with ray_session(opts):
        check_resources(spec)
        splits = load_splits(base.dataset)  # decoded once here, shared through the object store
        results_dir.mkdir(parents=True)
        (results_dir / SPEC_FILE).write_text(yaml.safe_dump(spec_raw, sort_keys=False))
        (results_dir / MANIFEST_FILE).write_text(
            json.dumps(manifest(spec_raw, splits.provenance, results_dir), indent=2)
        )
        return _search_and_finish(spec, results_dir, splits, restore=False)


def resume(results_dir: Path, opts: RayOptions) -> dict[str, Any]:
    spec_file = results_dir / SPEC_FILE
    if not spec_file.is_file():
        raise UserError(
            f"{results_dir} is not a search results folder (no {SPEC_FILE}); pass the folder 'tuner run' created"
        )
    spec_raw = yaml.safe_load(spec_file.read_text())
    spec = validate_spec(spec_raw, str(spec_file))
    with ray_session(opts):
        check_resources(spec)
        splits = load_splits(spec.base_config().dataset)
        return _search_and_finish(spec, results_dir, splits, restore=True)


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
    trainable = tune.with_resources(
        trial_function(base.to_dict(), data_ref, spec.resources.gpu),
        {"cpu": spec.resources.cpus, "gpu": spec.resources.gpu},
    )
    concurrency = spec.max_concurrent_trials or max(
        1, int(ray.cluster_resources().get("CPU", 1) // spec.resources.cpus)
    )
    # A searcher otherwise keeps a single pending trial, so trials would start one at a time.
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(concurrency))
    t0 = time.perf_counter()
    if restore:
        if not tune.Tuner.can_restore(str(results_dir)):
            raise UserError(
                f"{results_dir} holds no Ray Tune experiment state to resume; start a new run"
            )
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
