"""One search, end to end, as a sequence of resumable stages.

    prepare   checks (resources, shared storage), the dataset decoded once and put in the
              object store; redone by every process (cheap: decoded files are cached)
    search    Ray Tune runs the trials (Optuna proposes, ASHA cuts); Tune's own state resumes it
    tables    trials.parquet and summary.csv from Tune's results; the winner and its config,
              and the winner against the base config's own trial (`winner`)
    plan_retrain  the final training's epochs: what `budget` leaves when the search is done
              (an uninterrupted run; its epoch time from a 2-epoch probe), else
              `retrain.epochs` (`final_plan`)
    retrain   the winner retrained with each seed, tested once (`retrain/seed-<k>` per seed;
              a killed seed resumes from its last checkpoint, a finished one is never redone)
    export    best/ (checkpoint, test metrics, test_summary.json, config) and best_config.yaml

Each stage is recorded in manifest.json once its outputs are complete, and `resume` starts at
the first stage not recorded, so a kill at any moment loses at most the stage in progress
(and for the search and each seed, at most an epoch). The folder's names: `tuner.results.layout`.
"""

from __future__ import annotations

import json
import os
import pickletools
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from trainable.config import TrainConfig, read_yaml
from trainable.data.datasets import load_splits
from trainable.errors import Interrupted, StorageError, UserError, storage_error
from trainable.files import atomic, storage
from trainable.training.horizon import Deadline
from tuner import compat
from tuner.integrations.cluster import (
    RayOptions,
    check_resources,
    check_shared_storage,
    ray_session,
    share_data,
)
from tuner.results import bucket
from tuner.results.layout import ResultsDir
from tuner.results.records import (
    DeployDone,
    ExportDone,
    Outcome,
    RegisterDone,
    RetrainPlan,
    SearchDone,
    SeedDone,
    TablesDone,
)
from tuner.search.stopping import (
    StopState,
    StorageGuard,
    quiet_store_outages,
    stop_signals,
    storage_message,
)
from tuner.search.warm_start import WarmStart, load_warm_start
from tuner.spec import SearchSpec, validate_spec
from tuner.stages.final_plan import RetrainData, plan_final_training
from tuner.stages.manifest import Manifest, SearchStatus, provenance
from tuner.stages.winner import tables_stage


def results_dir_for(spec: SearchSpec) -> ResultsDir:
    return bucket.results_for(spec.storage_path, spec.name)


def _no_world_writable_files() -> None:
    """Results (checkpoints are loaded back into processes) are never world-writable, whatever
    the user's umask; set before Ray starts so its local workers inherit it. Group bits stay
    the user's choice."""
    os.umask(os.umask(0) | 0o002)


def run(spec: SearchSpec, spec_raw: dict[str, Any], opts: RayOptions) -> Outcome:
    started = time.monotonic()  # the budget's clock (spec.budget)
    results = results_dir_for(spec)
    if results.remote is not None:
        storage.check_bucket(results.remote)
    if bucket.exists(results):
        raise UserError(
            f"results folder {results.where} already exists; continue it with "
            f"'python -m tuner resume {results.where}', or change 'name' or --storage-path"
        )
    bucket.discard(results)  # a working copy whose bucket copy is gone is stale
    warm = load_warm_start(spec)  # read and checked before Ray starts
    _no_world_writable_files()
    with ray_session(opts), stop_signals() as stop, _storage_errors(results):
        splits = _prepare(spec, results)
        _create(results, spec_raw, splits.provenance)
        if warm is not None:
            Manifest(results.manifest).update(warm_start=warm.summary())
        return _stages(spec, results, splits, stop, warm, started)


def _create(results: ResultsDir, spec_raw: dict[str, Any], data_provenance: str) -> None:
    """The results folder appears whole, with its spec and manifest (made beside it, then
    renamed): a kill never leaves a folder that `run` refuses and `resume` cannot read. In a
    bucket the manifest is published after the spec, so the same holds there."""
    staging = ResultsDir(results.path.with_name(f".{results.path.name}.{os.getpid()}.tmp"))
    staging.path.mkdir(parents=True)
    atomic.write_text(staging.spec, yaml.safe_dump(spec_raw, sort_keys=False))
    Manifest(staging.manifest).update(**provenance(spec_raw, data_provenance, results.where))
    staging.path.rename(results.path)
    try:
        bucket.publish(results)
    except BaseException:
        bucket.discard(results)
        raise


def resume(results: ResultsDir, opts: RayOptions) -> Outcome:
    spec, spec_raw = _saved_spec(bucket.fetch(results))
    manifest = Manifest(results.manifest)
    if manifest.status == SearchStatus.FINISHED:
        raise UserError(
            f"{results.where} is a finished search: nothing to resume; see "
            f"'python -m tuner show {results.where}', or start a new run under another name"
        )
    warm = None
    if not manifest.done("search"):
        with tempfile.TemporaryDirectory() as tmp:
            tune_state = bucket.tune_state_copy(results, Path(tmp))
            check_tune_state(tune_state)
            fresh = not tune_state.tune_state.is_file()
        if fresh:  # the search starts afresh: seed its study again
            warm = load_warm_start(spec)
    _no_world_writable_files()
    with ray_session(opts), stop_signals() as stop, _storage_errors(results):
        splits = _prepare(spec, results)
        if not manifest.read():  # damaged: its provenance is written again, stages found anew
            manifest.update(**provenance(spec_raw, splits.provenance, results.where))
        manifest.update(status=SearchStatus.RUNNING)
        return _stages(spec, results, splits, stop, warm)


def _saved_spec(results: ResultsDir) -> tuple[SearchSpec, dict[str, Any]]:
    if not results.spec.is_file():
        raise UserError(
            f"{results.where} is not a search results folder (no {results.spec.name}); pass the "
            "folder 'tuner run' created"
        )
    spec_raw = read_yaml(results.spec)
    if not isinstance(spec_raw, dict):
        raise UserError(f"{results.spec} is not a search-space mapping; the folder is damaged")
    return validate_spec(spec_raw, str(results.spec)), spec_raw


def check_tune_state(results: ResultsDir) -> None:
    """Ray Tune's own state files, read before Ray starts, so that a truncated one (a kill
    during a write, a full disk) is a one-line error naming it rather than a traceback."""
    if not results.tune_state.is_file():
        return  # killed before Tune saved anything: the search starts afresh in this folder
    try:
        # Walk the pickle's opcodes to its STOP without executing any of them: catches an empty
        # or cut-off file, and runs nothing from it (Tuner.restore unpickles it later).
        for _ in pickletools.genops(results.tune_state.read_bytes()):
            pass
    except (OSError, ValueError) as err:
        raise UserError(
            f"{results.tune_state} is empty or corrupt ({type(err).__name__}); this search cannot "
            "be resumed: its finished trials stay in their folders; start a new run under a new name"
        ) from err
    for state in results.tune_experiment_states():
        try:
            json.loads(state.read_text())
        except (OSError, ValueError) as err:
            raise UserError(
                f"{state} is truncated or corrupt ({type(err).__name__}); move it aside to resume "
                "from the previous state file, or start a new run"
            ) from err


@contextmanager
def _storage_errors(results: ResultsDir) -> Iterator[None]:
    """A write that fails because the storage is full or read-only ends the run in one line
    naming the path and the free space; every file was written atomically, so nothing is
    half-written and `resume` continues once there is room. A bucket that cannot be reached
    (outside the search stage, which stops on its own) ends it the same way, once it exists
    to be resumed."""
    try:
        yield
    except Exception as err:
        full = storage_error(err)
        if full is not None:
            raise StorageError(
                f"{storage_message(full, results.path)}; the search's state is kept: free some "
                f"space, then continue with 'python -m tuner resume {results.where}'"
            ) from err
        if results.remote is None or not storage.unreachable(err):
            raise
        then = (
            f"continue with 'python -m tuner resume {results.where}'"
            if results.manifest.is_file()  # the working copy of a search that exists
            else "run the same command again"
        )
        raise StorageError(f"{storage.unreachable_message(results.remote)}, then {then}") from err


def _prepare(spec: SearchSpec, results: ResultsDir) -> Any:
    check_resources(spec)
    check_shared_storage(results.remote or str(results.path.parent))
    return load_splits(spec.base_config().dataset)  # decoded once, shared via the object store


def _stages(
    spec: SearchSpec,
    results: ResultsDir,
    splits: Any,
    stop: StopState,
    warm: WarmStart | None,
    started: float | None = None,
) -> Outcome:
    """The stages from the first one not done; `started` (time.monotonic) is when an
    uninterrupted run began, None for a resumed one."""
    from tuner.integrations.tracking import tracked
    from tuner.search.run import SearchRun

    manifest = Manifest(results.manifest)
    data_ref = share_data(splits)
    try:
        with tracked(spec, results, manifest) as tracker:
            from tuner.results.comparison import effective_images

            val_images = effective_images(splits.val.labels, spec.scheduler.metric)
            search = SearchRun(spec, results, data_ref, warm, val_images=val_images)
            return _run_stages(spec, results, search, manifest, stop, tracker, started, val_images)
    except KeyboardInterrupt:  # a signal outside the search, or a second one
        manifest.update(status=SearchStatus.INTERRUPTED, stop_reason=stop.reason or "stopped")
        raise
    finally:
        _publish_at_exit(results)


def _publish_at_exit(results: ResultsDir) -> None:
    """The working copy to the bucket however the run ends; if the bucket cannot take it, the
    run's own error stays the one reported and the working copy keeps everything."""
    try:
        bucket.publish(results)
    except UserError as err:
        print(f"warning: {err}; the latest files stay in {results.path}", file=sys.stderr)


def _run_stages(
    spec: SearchSpec,
    results: ResultsDir,
    search: Any,
    manifest: Manifest,
    stop: StopState,
    tracker: Any,
    started: float | None,
    val_images: int,
) -> Outcome:
    """The stages in order; `tracker` (tuner.integrations.tracking) mirrors each into MLflow when on."""
    data_ref = search.data_ref
    grid = None
    if not manifest.done("search"):
        grid, wall_s = _search_stage(search, manifest, stop, tracker.trial_callbacks())
        patience = search.patience is not None and search.patience.exhausted
        manifest.mark_done("search", SearchDone(wall_s=wall_s, ended_by_patience=patience))
        bucket.publish(results)
    if not manifest.done("tables"):
        manifest.mark_done("tables", tables_stage(search, grid, manifest, val_images))
        bucket.publish(results)
        tracker.tag_trials(results.summary)
    best_params = manifest.record("tables", TablesDone).best_params
    retrain_data = RetrainData(spec, data_ref)
    if not manifest.done("plan_retrain"):
        plan = plan_final_training(spec, results, started, best_params, retrain_data)
        manifest.mark_done("plan_retrain", plan)
    plan = manifest.record("plan_retrain", RetrainPlan)
    best_config = spec.retrain_config(best_params, plan.epochs)
    # The plan's deadline holds in the process that made it: a resumed run's clock had a gap,
    # and its seeds finish the epochs they last planned.
    deadline = None
    if started is not None and plan.ends_at is not None:
        deadline = Deadline(plan.ends_at, plan.max_epochs or Deadline.max_epochs)
    outcomes = _retrain_stage(spec, results, manifest, best_config, retrain_data, deadline)
    tracker.log_seeds(outcomes)
    if not manifest.done("export"):
        from tuner.stages.retrain import export

        test = export(best_config, outcomes, results)
        # test_summary.json holds more (per-class means, seeds): read the record's fields
        manifest.mark_done("export", ExportDone.model_validate(test, context={"read": True}))
    if not manifest.done("deploy"):
        from tuner.stages.deploy import deploy

        card = deploy(results)
        agreement = card["parity"]["onnx"]["top1_agreement"]
        manifest.mark_done(
            "deploy", DeployDone(model=results.model("onnx").name, top1_agreement=agreement)
        )
        bucket.publish(results)
    if not manifest.done("register"):
        version = tracker.register()
        if version is not None:  # tracking on and the registry took it
            manifest.mark_done("register", RegisterDone(model=spec.name, version=version))
    return _finish(manifest)


def _search_stage(
    search: Any, manifest: Manifest, stop: StopState, extra_callbacks: list[Any]
) -> tuple[Any, float]:
    """Ray Tune's fit(); a stop request (signal, full disk) ends it with Tune's state saved."""
    stop.in_search = True
    t0 = time.perf_counter()
    try:
        guard = StorageGuard(stop, search.results, StorageError.exit_code)
        with quiet_store_outages(search.results), compat.without_tune_resume_hint():
            grid = search.fit(callbacks=[guard, *extra_callbacks])
    except OSError as err:
        # When fit() ends, Tune reads its experiment back from the storage: with the bucket
        # unreachable that raises, after the guard's stop or before any trial noticed.
        remote = search.results.remote
        if remote is None or not storage.unreachable(err):
            raise
        stop.note(storage.unreachable_message(remote), StorageError.exit_code)
    finally:
        stop.in_search = False
    if stop.reason is not None:
        manifest.update(status=SearchStatus.INTERRUPTED, stop_reason=stop.reason)
        resume_cmd = f"python -m tuner resume {search.results.where}"
        if stop.exit_code == StorageError.exit_code:
            raise StorageError(f"{stop.reason}, then continue with '{resume_cmd}'")
        raise Interrupted(
            f"search {stop.reason}; its state is saved: continue with '{resume_cmd}'",
            stop.exit_code,
        )
    return grid, time.perf_counter() - t0


def _retrain_stage(
    spec: SearchSpec,
    results: ResultsDir,
    manifest: Manifest,
    best_config: TrainConfig,
    data: RetrainData,
    deadline: Deadline | None,
) -> list[dict[str, Any]]:
    from tuner.stages.retrain import retrain_seeds, seed_configs

    configs = seed_configs(best_config, spec.retrain.seeds)
    todo = [c for c in configs if not manifest.done(f"retrain/seed-{c.seed}")]

    def record(outcome: dict[str, Any]) -> None:
        record = SeedDone(status=outcome["status"], out_dir=outcome["out_dir"])
        manifest.mark_done(f"retrain/seed-{outcome['seed']}", record)
        bucket.publish(results, "manifest.json")

    if todo:
        t0 = time.perf_counter()
        retrain_seeds(
            todo,
            results,
            data.ref(best_config),
            *data.resources(),
            record,
            spec.checkpoint_interval_s,
            deadline,
        )
        # Summed over the processes that retrained (a resumed run adds its part).
        earlier = float(manifest.read().get("retrain_wall_s", 0.0))
        manifest.update(retrain_wall_s=earlier + time.perf_counter() - t0)
    # Every seed's outcome from its own file: the ones done by an earlier process (or, with
    # a bucket, on another node) included.
    for c in configs:
        bucket.fetch_run(results, c.seed)
    return [
        json.loads(ResultsDir.run_outcome(results.retrain_run(c.seed)).read_text()) for c in configs
    ]


def _finish(manifest: Manifest) -> Outcome:
    tables, export = manifest.record("tables", TablesDone), manifest.record("export", ExportDone)
    outcome = Outcome(
        status=SearchStatus.FINISHED,
        search_wall_s=manifest.record("search", SearchDone).wall_s,
        retrain_wall_s=manifest.read().get("retrain_wall_s"),
        **tables.model_dump(include=set(Outcome.model_fields)),
        **export.model_dump(include=set(Outcome.model_fields)),
    )
    manifest.finish(outcome)
    return outcome
