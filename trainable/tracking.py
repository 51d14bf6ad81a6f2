"""Production training in MLflow, and configs read from its model registry (both optional).

`python -m trainable train` logs a run when `MLFLOW_TRACKING_URI` is set: the trainer config as
params, every epoch's metrics with the epoch as step, the test metrics, and the run's metric
files. `--config models:/NAME/VERSION` reads `best_config.yaml` from a registered model version
(what a search registers, `tuner.integrations.tracking`). MLflow is imported only when asked for.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from trainable.errors import UserError
from trainable.files.run_dir import RunDir

REGISTRY_SCHEME = "models:/"
METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")
Report = Callable[[dict[str, float], Path | None], None]


def shown(uri: str) -> str:
    """A tracking URI as messages print it: any user:password in it replaced by ***."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def describe(err: BaseException) -> str:
    """An MLflow error in one line (its first, at most 200 characters)."""
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def warn(what: str, what_goes_on: str = "training goes on without it") -> None:
    print(f"warning: {what}; {what_goes_on}", file=sys.stderr, flush=True)


class BestEffort:
    """Calls into MLflow that must never stop training or a search: the first failure is one
    warning (`<what> failed (<error>); <what goes on>`), and every later call is skipped."""

    def __init__(self, what: str, what_goes_on: str = "training goes on without it") -> None:
        self.what, self.what_goes_on, self.live = what, what_goes_on, True

    def __call__(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.live:
            return None
        try:
            return method(*args, **kwargs)
        except Exception as err:
            self.live = False
            warn(f"{self.what} failed ({describe(err)})", self.what_goes_on)
            return None


def client_defaults() -> None:
    """MLflow's client as a long-running job wants it, unless the user set otherwise: fail
    fast (MLflow retries a request 7 times with backoff, minutes during which training or a
    search would wait), and no "View run at" line for every run (the command prints one)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def log_batch(
    client: Any,
    run_id: str,
    metrics: dict[str, Any] | None = None,
    step: int = 0,
    params: dict[str, str] | None = None,
) -> None:
    """Metrics (numbers only; NaN left out) and params in as few requests as MLflow takes (100
    params, 1,000 values each): one request per epoch instead of one per metric, which cost the
    search's driver ~250 ms per reported epoch against ~16 ms (25 metrics, local server)."""
    from mlflow.entities import Metric, Param

    stamp = int(time.time() * 1000)
    values = [
        Metric(key, float(value), stamp, step)
        for key, value in (metrics or {}).items()
        if isinstance(value, float | int) and not isinstance(value, bool) and value == value
    ]
    pairs = [Param(key, value) for key, value in (params or {}).items()]
    for i in range(0, len(pairs), 100):
        client.log_batch(run_id, params=pairs[i : i + 100])
    for i in range(0, len(values), 1000):
        client.log_batch(run_id, metrics=values[i : i + 1000])


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested trainer config as MLflow params: dotted keys, as `--set` takes them."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flat_params(value, f"{name}.")
        else:
            flat[name] = str(value)
    return flat


def per_class_metrics(summary: dict[str, Any], split: str) -> dict[str, float]:
    """`<split>_accuracy`, `<split>_macro_f1` and each class's accuracy and F1 (a class name
    keeps only the characters MLflow allows in a metric name)."""
    out = {f"{split}_accuracy": float(summary["accuracy"])}
    if "macro_f1" in summary:
        out[f"{split}_macro_f1"] = float(summary["macro_f1"])
    for name, row in summary.get("per_class", {}).items():
        safe = METRIC_UNSAFE.sub("_", str(name))
        out[f"{split}_accuracy_{safe}"] = float(row["accuracy"])
        out[f"{split}_f1_{safe}"] = float(row["f1"])
    return out


def config_from_registry(uri: str) -> Path:
    """`models:/NAME/VERSION`: the registered version's `best_config.yaml`, downloaded to a
    temporary folder."""
    try:
        import mlflow.artifacts
    except ImportError:
        raise UserError(
            f"--config {uri} needs MLflow's client: pip install 'hpsearch[mlflow]'"
        ) from None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        raise UserError(f"--config {uri} needs MLFLOW_TRACKING_URI: the registry's server")
    target = tempfile.mkdtemp(prefix="hpsearch-registry-")
    try:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{uri.rstrip('/')}/best_config.yaml", dst_path=target
        )
    except Exception as err:
        raise UserError(
            f"cannot read best_config.yaml of {uri} from the registry at "
            f"{shown(os.environ['MLFLOW_TRACKING_URI'])} ({describe(err)}); check the name and version "
            "(the MLflow UI lists them under Models)"
        ) from None
    return Path(path)


class _Run:
    """One MLflow run of production training; a failure is one warning, then it stops."""

    def __init__(self, uri: str, config: dict[str, Any], out: Path) -> None:
        from mlflow import MlflowClient

        self.call = BestEffort(f"MLflow tracking at {shown(uri)}")
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "hpsearch-train")
        experiment = self.client.get_experiment_by_name(name)
        eid = experiment.experiment_id if experiment else self.client.create_experiment(name)
        self.experiment = name
        self.run_id = self.client.create_run(
            eid, run_name=out.name, tags={"hpsearch.role": "train", "out_dir": str(out)}
        ).info.run_id
        log_batch(self.client, self.run_id, params=flat_params(config))

    def wrap(self, report: Report) -> Report:
        """The trainer's report callback, also logging the epoch's metrics (NaN left out)."""

        def logged(metrics: dict[str, float], ckpt: Path | None) -> None:
            report(metrics, ckpt)
            self.call(log_batch, self.client, self.run_id, metrics, int(metrics["epoch"]))

        return logged

    def log_test(self, summary: dict[str, Any]) -> None:
        self.call(log_batch, self.client, self.run_id, per_class_metrics(summary, "test"))

    def close(self, out: Path, status: str) -> None:
        run = RunDir(out)
        for folder in (run.test_metrics, run.val_metrics):
            if folder.is_dir():
                self.call(self.client.log_artifacts, self.run_id, str(folder), folder.name)
        for file in (run.config, run.result):
            if file.is_file():
                self.call(self.client.log_artifact, self.run_id, str(file))
        self.call(self.client.set_terminated, self.run_id, status)


@contextmanager
def production_run(config: dict[str, Any], out: Path) -> Iterator[_Run | None]:
    """The run when `MLFLOW_TRACKING_URI` is set (None otherwise, or if the server cannot be
    reached: one warning), ended FINISHED, or FAILED/KILLED however training ends."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    run = None
    if uri:
        client_defaults()
        try:
            run = _Run(uri, config, out)
            where = f"experiment {run.experiment!r} at {shown(uri)}"
            print(f"MLflow: run {run.run_id} in {where}", flush=True)
        except ImportError:
            warn(
                "MLFLOW_TRACKING_URI is set but mlflow is not installed (pip install 'hpsearch[mlflow]')"
            )
        except Exception as err:
            warn(f"MLflow tracking at {shown(uri)} is not available ({describe(err)})")
    try:
        yield run
    except KeyboardInterrupt:
        if run:
            run.close(out, "KILLED")
        raise
    except BaseException:
        if run:
            run.close(out, "FAILED")
        raise
    if run:
        run.close(out, "FINISHED")
