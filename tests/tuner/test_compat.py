"""Every private Ray/Optuna name in tuner/compat.py, against the installed libraries: a Ray or
Optuna upgrade that renames or reshapes one fails here, not in a user's search."""

from __future__ import annotations

import signal
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from tuner import compat


def searcher() -> Any:
    from ray.tune.search.optuna import OptunaSearch

    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    return OptunaSearch(
        space=space, metric="m", mode="max", sampler=optuna.samplers.RandomSampler(0)
    )


def test_optuna_search_internals() -> None:
    s = searcher()
    assert isinstance(compat.optuna_study(s), optuna.Study)
    s.suggest("t1")
    trials = compat.optuna_trials(s)
    assert set(trials) == {"t1"} and trials["t1"].number == 0
    s.on_trial_complete("t1", {"m": 0.5})
    assert compat.completed_trials(s) == {"t1"}
    compat.completed_trials(s).add("t2")  # the live set: an addition is seen by Ray
    assert "t2" in compat.completed_trials(s)


def test_a_missing_or_reshaped_name_is_a_compat_error() -> None:
    with pytest.raises(compat.CompatError, match=r"_ot_study is gone .*update tuner/compat\.py"):
        compat.optuna_study(SimpleNamespace())
    with pytest.raises(compat.CompatError, match=r"_checkpoint_results is a str"):
        compat.kept_checkpoints(SimpleNamespace(_checkpoint_results="x"))


def test_checkpoint_manager_keeps_its_list() -> None:
    from ray.train._internal.checkpoint_manager import _CheckpointManager

    manager = _CheckpointManager(checkpoint_config=None)
    assert compat.kept_checkpoints(manager) == []
    compat.set_kept_checkpoints(manager, [])
    assert compat.kept_checkpoints(manager) == []


def test_a_tuner_has_a_local_tuner_whose_run_config_takes_callbacks(tmp_path: Any) -> None:
    from ray import tune

    tuner = tune.Tuner(lambda _c: None, run_config=tune.RunConfig(storage_path=str(tmp_path)))
    marker = object()
    compat.set_restored_callbacks(tuner, [marker])
    assert tuner._local_tuner.get_run_config().callbacks == [marker]


def test_cli_reporter_sorts_by_a_private_switch() -> None:
    from ray.tune import CLIReporter

    reporter = CLIReporter(metric="val_acc", mode="max")
    assert compat.reporter_metric(reporter) == "val_acc"
    compat.set_sort_by_metric(reporter, False)
    assert reporter._sort_by_metric is False


def test_tune_installs_its_interrupt_handler_and_it_is_read_as_a_callable() -> None:
    assert compat.tune_installs_interrupt_handler()
    before = signal.getsignal(signal.SIGUSR1)
    try:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        assert compat.tune_interrupt_handler() is None
        signal.signal(signal.SIGUSR1, lambda *_: None)
        assert callable(compat.tune_interrupt_handler())
    finally:
        signal.signal(signal.SIGUSR1, before)


def test_disk_full_text() -> None:
    assert compat.is_disk_full_text("OSError: [Errno 28] No space left on device: '/x'")
    assert not compat.is_disk_full_text("OSError: [Errno 13] Permission denied")


def test_the_worker_output_dispatcher_has_the_handler_ray_removes() -> None:
    from ray._private import worker

    dispatcher = worker.global_worker_stdstream_dispatcher
    assert callable(dispatcher.remove_handler)
    compat.stop_forwarding_worker_output()  # no Ray running: removing an absent name is fine


def test_the_pinned_ray_has_its_dashboard() -> None:
    # requirements.txt pins ray[default]; the GPU kit's minimal Ray is checked in test_kit.
    assert compat.dashboard_missing() is None


def test_the_mlflow_callback_keeps_its_trial_runs(mlflow_server: str) -> None:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    callback = MLflowLoggerCallback(tracking_uri=mlflow_server, experiment_name="compat")
    callback.setup()  # where Ray makes the map (a real MLflow server: tests/conftest.py)
    assert compat.mlflow_trial_runs(callback) == {}


def test_tunes_resume_hint_is_held_back_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    assert compat.tune_prints_resume_hint()
    logger = logging.getLogger(compat.TUNE_LOGGER)
    with caplog.at_level(logging.WARNING, logger=compat.TUNE_LOGGER):
        with compat.without_tune_resume_hint():
            logger.warning("Experiment has been interrupted...\nResume experiment with: x")
            logger.warning("another warning")
        logger.warning("Resume experiment with: after the block")
    assert [r.getMessage() for r in caplog.records] == [
        "another warning",
        "Resume experiment with: after the block",
    ]


def test_optuna_hypervolume_of_a_known_front() -> None:
    import numpy as np

    # two points of a 2-D minimisation front under (3, 3): areas 2 x 1 and 1 x 1, overlap none
    points = np.asarray([[1.0, 2.0], [2.0, 1.0]])
    assert compat.hypervolume(points, np.asarray([3.0, 3.0])) == 3.0
    assert compat.hypervolume(points[:1], np.asarray([3.0, 3.0])) == 2.0
