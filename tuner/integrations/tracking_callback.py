"""Ray Tune's MLflow logger for the trials, made resumable and unable to stop a search.

Imported only when tracking is on: Ray's integration imports MLflow.
"""

from __future__ import annotations

import functools
from typing import Any

from ray.air.constants import TRAINING_ITERATION
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.result import TIMESTEPS_TOTAL

from trainable.tracking import BestEffort, log_batch
from tuner import compat


class TrialRuns(MLflowLoggerCallback):
    """One MLflow run per trial, tagged with the search's parent run.

    A trial resumed by `tuner resume` logs into the run it had (found by its `trial_name` tag
    under the same parent) instead of a second one; any MLflow failure is one warning, then
    the trials go on unlogged."""

    def __init__(self, uri: str, experiment: str, tags: dict[str, str], goes_on: str) -> None:
        super().__init__(tracking_uri=uri, experiment_name=experiment, tags=tags)
        self.parent = tags["mlflow.parentRunId"]
        self._guard = BestEffort("MLflow logging of the trials", goes_on)

    @functools.cached_property
    def _client(self) -> Any:
        """One client for the search, made at its first use (after Tune copied the callback)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def setup(self, *args: Any, **kwargs: Any) -> None:
        self._guard(lambda: super(TrialRuns, self).setup(*args, **kwargs))

    def log_trial_start(self, trial: Any) -> None:
        self._guard(self._start, trial)

    def _start(self, trial: Any) -> None:
        runs = compat.mlflow_trial_runs(self)
        if trial not in runs:
            client = self._client
            query = f"tags.`mlflow.parentRunId` = '{self.parent}' and tags.trial_name = '{trial}'"
            experiment = str(self.mlflow_util.experiment_id)
            earlier = client.search_runs([experiment], query, max_results=1)
            if earlier:
                runs[trial] = earlier[0].info.run_id
                client.update_run(earlier[0].info.run_id, status="RUNNING")
        super().log_trial_start(trial)

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        self._guard(self._log_result, trial, result)

    def _log_result(self, trial: Any, result: dict[str, Any]) -> None:
        """Ray's logs each metric in its own request (~250 ms of the driver per epoch with 25
        metrics on a local server); one batch per epoch takes ~16 ms. Step: Ray's own."""
        from ray.tune.utils import flatten_dict

        step = int(result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION])
        run_id = compat.mlflow_trial_runs(self)[trial]
        log_batch(self._client, run_id, flatten_dict(result), step=step)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._guard(super().log_trial_end, trial, failed)
