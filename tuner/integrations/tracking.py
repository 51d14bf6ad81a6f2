"""A search in MLflow: its trials, its retraining seeds and the winner in the model registry.

On when `MLFLOW_TRACKING_URI` is set (MLflow's own convention) or the search-space file names
`tracking.uri`; off otherwise, and then nothing here imports MLflow. The search logs to the
MLflow experiment named after it:

    run "search"        the parent: search-space file, manifest, summary, test summary
    runs "trial-<id>"   one per trial (Ray Tune's MLflowLoggerCallback), nested under the
                        parent: sampled hyperparameters as params, every epoch's metrics with
                        the epoch as step, tag `status` (completed/pruned/diverged/errored)
    runs "seed-<k>"     each retraining seed: its trainer config, epoch metrics, test accuracy
                        and per-class test metrics, its test metrics folder
    registered model    named after the search: each finished search adds a version holding
                        the exported checkpoint, best_config.yaml and the test metrics, tagged
                        with the search, the seed and the test accuracy

Tracking never stops a search: an unreachable server is one warning at start, a failure later
one warning, and the search goes on keeping its local results. The parent run's id is kept in
the manifest, so `resume` logs into the same runs and registers the model once.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from trainable.errors import Interrupted
from trainable.files import checkpoint
from trainable.files.run_dir import RunDir
from trainable.tracking import (
    BestEffort,
    client_defaults,
    flat_params,
    log_batch,
    per_class_metrics,
    shown,
    warn,
)
from trainable.vocab import Status
from tuner.results.layout import ResultsDir
from tuner.spec import SearchSpec
from tuner.stages.manifest import Manifest

ROLE, SEARCH, TRIAL_NAME = "hpsearch.role", "hpsearch.search", "trial_name"
PARENT = "mlflow.parentRunId"  # MLflow's own tag: the UI nests a run under its parent
MANIFEST_KEY = "mlflow_run_id"
F = TypeVar("F", bound=Callable[..., Any])


def tracking_uri(spec: SearchSpec) -> str | None:
    return spec.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def _best_effort(method: F) -> F:
    """A tracking failure is one warning, then tracking is off for the rest of the run."""

    @functools.wraps(method)
    def guarded(self: Tracker, *args: Any, **kwargs: Any) -> Any:
        return self.guard(method, self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


def _ms(path: Path) -> int | None:
    return int(path.stat().st_mtime * 1000) if path.is_file() else None


GOES_ON = "the search goes on without it and keeps its results locally"


def _warn(what: str) -> None:
    warn(what, GOES_ON)


class Tracker:
    """The driver's MLflow client for one search; every method is best effort."""

    def __init__(self, uri: str, spec: SearchSpec, results: ResultsDir) -> None:
        from mlflow import MlflowClient

        self.uri, self.spec, self.results = uri, spec, results
        self.guard = BestEffort(f"MLflow tracking at {shown(uri)}", GOES_ON)
        self.client = MlflowClient(tracking_uri=uri)
        self.parent_id = ""

    @property
    def live(self) -> bool:
        return self.guard.live

    @classmethod
    def open(cls, spec: SearchSpec, results: ResultsDir, manifest: Manifest) -> Tracker | None:
        uri = tracking_uri(spec)
        if uri is None:
            return None
        client_defaults()
        try:
            tracker = cls(uri, spec, results)
        except ImportError:
            _warn(
                f"MLflow tracking was asked for ({shown(uri)}) but mlflow is not installed "
                "(pip install 'hpsearch[mlflow]')"
            )
            return None
        tracker._start(manifest)
        if not tracker.live:
            return None
        print(
            f"MLflow: experiment {spec.name!r} at {shown(uri)}/#/experiments/{tracker.experiment_id} "
            f"(run 'search', {tracker.parent_id})",
            flush=True,
        )
        return tracker

    @_best_effort
    def _start(self, manifest: Manifest) -> None:
        name = self.spec.name
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(name)
        )
        known = manifest.read().get(MANIFEST_KEY)
        if known:  # a resumed search: the same parent run
            self.parent_id = known
            self.client.update_run(known, status="RUNNING")
        else:
            run = self.client.create_run(
                experiment_id, run_name="search", tags={ROLE: "search", SEARCH: name}
            )
            self.parent_id = run.info.run_id
            self.client.log_param(self.parent_id, "results", self.results.where)
            manifest.update(**{MANIFEST_KEY: self.parent_id})
        self.experiment_id = experiment_id

    def trial_callbacks(self) -> list[Any]:
        """Ray Tune's own MLflow logger, its runs nested under the search's."""
        if not self.live:
            return []
        from tuner.integrations.tracking_callback import TrialRuns

        tags = {PARENT: self.parent_id, ROLE: "trial"}
        return [TrialRuns(self.uri, self.spec.name, tags, GOES_ON)]

    def _children(self, role: str) -> list[Any]:
        query = f"tags.`{PARENT}` = '{self.parent_id}' and tags.`{ROLE}` = '{role}'"
        return list(self.client.search_runs([self.experiment_id], query, max_results=50000))

    @_best_effort
    def tag_trials(self, summary_csv: Path) -> None:
        """Each trial run's status, as the search's summary has it. A trial still running when
        the search ended (searcher.patience, the time budget) gets no end from Ray's logger:
        its run is closed here, FINISHED like every trial that ended without an error."""
        summary = pd.read_csv(summary_csv, dtype={"trial_id": str})
        status = {f"trial-{r.trial_id}": str(r.status) for r in summary.itertuples()}
        for run in self._children("trial"):
            name = run.data.tags.get(TRIAL_NAME, "")
            if name in status:
                self.client.set_tag(run.info.run_id, "status", status[name])
            if run.info.status == "RUNNING":
                failed = status.get(name) == str(Status.ERRORED)
                self.client.set_terminated(run.info.run_id, "FAILED" if failed else "FINISHED")

    @_best_effort
    def log_seeds(self, outcomes: list[dict[str, Any]]) -> None:
        """One run per retraining seed; a seed logged by an earlier process is not repeated."""
        logged = {run.data.tags.get("seed") for run in self._children("seed")}
        for outcome in outcomes:
            if str(outcome["seed"]) not in logged:
                self._log_seed(outcome)

    def _log_seed(self, outcome: dict[str, Any]) -> None:
        seed = int(outcome["seed"])
        run_dir = self.results.retrain_run(seed)
        tags = {PARENT: self.parent_id, ROLE: "seed", SEARCH: self.spec.name, "seed": str(seed)}
        tags["status"] = str(outcome["status"])
        # Logged once the seed is done, so the run's times are the training's own: from its
        # config (written at the start) to its outcome (written last), in ms as MLflow keeps them.
        began, ended = (RunDir(run_dir).config, ResultsDir.run_outcome(run_dir))
        run = self.client.create_run(
            self.experiment_id,
            start_time=_ms(began),
            run_name=f"seed-{seed}",
            tags=tags,
        )
        run_id = run.info.run_id
        last = RunDir(run_dir).last_checkpoint
        state = checkpoint.load(last) if last.is_file() else {}
        log_batch(self.client, run_id, params=flat_params(state.get("config", {})))
        for row in state.get("history", []):
            log_batch(self.client, run_id, row, step=int(row["epoch"]))
        if "test" in outcome:
            log_batch(self.client, run_id, per_class_metrics(outcome["test"], "test"))
        if RunDir(run_dir).test_metrics.is_dir():
            self.client.log_artifacts(run_id, str(RunDir(run_dir).test_metrics), "test_metrics")
        status = "FINISHED" if "test" in outcome else "FAILED"
        self.client.set_terminated(run_id, status, end_time=_ms(ended))

    @_best_effort
    def register(self) -> str | None:
        """The exported model as a new version of the registered model named after the search:
        the exported seed's run holds it under `model/`. Returns the version."""
        results, name = self.results, self.spec.name
        summary = json.loads(results.test_summary.read_text())
        seed = int(summary["exported_seed"])
        runs = [r for r in self._children("seed") if r.data.tags.get("seed") == str(seed)]
        run_id = runs[0].info.run_id
        for path in (results.best_checkpoint, results.best_trainer_config, results.test_summary):
            self.client.log_artifact(run_id, str(path), "model")
        self.client.log_artifact(run_id, str(results.best_config("yaml")), "model")
        served = [results.model("onnx"), results.model("torchscript"), *results.model_card()]
        for path in served:  # the deployable model and its card (the deploy stage ran before)
            if path.is_file():
                self.client.log_artifact(run_id, str(path), "model")
        self.client.log_artifacts(run_id, str(results.test_metrics), "model/test_metrics")
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name, tags={SEARCH: name})
        accuracy = float(summary["test_accuracy_by_seed"][str(seed)])
        version = self.client.create_model_version(
            name,
            source=f"{self.client.get_run(run_id).info.artifact_uri}/model",
            run_id=run_id,
            tags={SEARCH: name, "seed": str(seed), "test_accuracy": f"{accuracy:.6f}"},
            description=f"search {name}: results at {results.where}",
            await_creation_for=0,  # the registry of a tracking server registers at once
        )
        return str(version.version)

    @_best_effort
    def finish(self, status: str) -> None:
        """The search's own files on the parent run, and its end: FINISHED, FAILED or KILLED."""
        r = self.results
        for path in (r.spec, r.manifest, r.summary, r.test_summary, r.best_config("yaml")):
            if path.is_file():
                self.client.log_artifact(self.parent_id, str(path))
        self.client.set_terminated(self.parent_id, status)


@contextmanager
def tracked(spec: SearchSpec, results: ResultsDir, manifest: Manifest) -> Iterator[Any]:
    """The search's tracker (or a stand-in that does nothing), ended however the run ends."""
    tracker = Tracker.open(spec, results, manifest) or _Off()
    try:
        yield tracker
    except (KeyboardInterrupt, Interrupted):
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")


class _Off:
    """Tracking off: the same calls, doing nothing."""

    def trial_callbacks(self) -> list[Any]:
        return []

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *_a, **_k: None
