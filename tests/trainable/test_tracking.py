"""The production-training side of MLflow tracking that needs no server (the server-backed
paths, a search and `trainable train --config models:/...`, are in tests/tuner/integrations/test_tracking.py)."""

from __future__ import annotations

import pytest

from trainable.tracking import BestEffort, flat_params, per_class_metrics, shown


def test_a_uri_with_credentials_is_printed_without_them() -> None:
    assert (
        shown("https://alice:s3cret@mlflow.example:5000/x") == "https://***@mlflow.example:5000/x"
    )
    assert shown("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert shown("sqlite:///mlflow.db") == "sqlite:///mlflow.db"


def test_a_nested_config_becomes_dotted_params_as_set_takes_them() -> None:
    flat = flat_params({"optimizer": {"lr": 0.01, "sgd": {"nesterov": True}}, "epochs": 3})
    assert flat == {"optimizer.lr": "0.01", "optimizer.sgd.nesterov": "True", "epochs": "3"}


def test_per_class_metric_names_keep_only_what_mlflow_allows() -> None:
    summary = {
        "accuracy": 0.5,
        "macro_f1": 0.4,
        "per_class": {
            "cat": {"accuracy": 0.6, "f1": 0.5},
            "dog+wolf?": {"accuracy": 0.4, "f1": 0.3},
        },
    }
    assert per_class_metrics(summary, "test") == {
        "test_accuracy": 0.5,
        "test_macro_f1": 0.4,
        "test_accuracy_cat": 0.6,
        "test_f1_cat": 0.5,
        "test_accuracy_dog_wolf_": 0.4,
        "test_f1_dog_wolf_": 0.3,
    }


def test_best_effort_warns_once_then_skips_every_later_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[int] = []

    def log(value: int) -> int:
        calls.append(value)
        if value == 2:
            raise ConnectionError("server gone\nsecond line")
        return value

    guard = BestEffort("MLflow tracking at http://***@host", "the search goes on")
    assert guard(log, 1) == 1
    assert guard(log, 2) is None and not guard.live
    assert guard(log, 3) is None
    assert calls == [1, 2]
    err = capsys.readouterr().err
    assert err == (
        "warning: MLflow tracking at http://***@host failed (server gone); the search goes on\n"
    )
