"""tuner/results/constraints.py: violations, feasibility, the Pareto front, Optuna's view."""

from __future__ import annotations

import math

import optuna
import pandas as pd
import pytest

from tests.tuner.conftest import tiny_spec
from trainable.errors import ConfigError
from tuner.results.constraints import (
    costs_of,
    describe,
    is_feasible,
    mark_feasible,
    named_violations,
    pareto_front,
    violations,
)
from tuner.spec import Bound, validate_spec

LIMITS = {"latency_ms": Bound(max=2.0), "params_m": Bound(min=0.1, max=1.0)}


def test_violations_are_signed_distances_and_unmeasured_breaks() -> None:
    assert violations(LIMITS, {"latency_ms": 1.5, "params_m": 0.5}) == [-0.5, -0.5, -0.4]
    assert violations(LIMITS, {"latency_ms": 3.0, "params_m": 0.05}) == [
        1.0,
        -0.95,
        pytest.approx(0.05),
    ]
    assert violations(LIMITS, {"latency_ms": math.nan}) == [1.0, 1.0, 1.0]
    assert is_feasible(LIMITS, {"latency_ms": 2.0, "params_m": 1.0})  # limits are inclusive
    assert not is_feasible(LIMITS, {"latency_ms": 2.01, "params_m": 1.0})
    assert describe(LIMITS) == "latency_ms <= 2, params_m >= 0.1, params_m <= 1"
    assert costs_of({"params_m": 2, "val_acc": 0.5, "latency_ms": None}) == {"params_m": 2.0}


def test_optuna_s_tpe_steers_by_the_named_violations() -> None:
    named = named_violations(LIMITS, {"latency_ms": 1.0, "params_m": 2.0})
    assert named == {"latency_ms.max": -1.0, "params_m.max": 1.0, "params_m.min": -1.9}
    # a real TPE study given them as Optuna's trial constraints splits feasible from not
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0), direction="maximize")
    for latency in (1.0, 3.0):
        t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        for name, value in named_violations(
            LIMITS, {"latency_ms": latency, "params_m": 0.5}
        ).items():
            t.set_constraint(name, value)
        study.tell(t, 0.5)
    assert [t.constraints["latency_ms.max"] for t in study.trials] == [-1.0, 1.0]
    assert study.best_trial.number == 0  # the infeasible trial is never the best


def test_feasible_first_and_the_pareto_front() -> None:
    summary = pd.DataFrame({
        "trial_id": ["a", "b", "c", "d"],
        "best_val_acc": [0.9, 0.8, 0.7, 0.6],
        "latency_ms": [5.0, 1.0, 0.5, 2.0],
        "params_m": [0.5, 0.5, 0.5, 0.5],
    })  # fmt: skip
    marked = mark_feasible(summary, LIMITS)
    assert marked["trial_id"].tolist() == ["b", "c", "d", "a"]  # feasible first, best first
    assert marked["feasible"].tolist() == [True, True, True, False]
    front = pareto_front(summary, "best_val_acc", 1.0, ["latency_ms"])
    assert front["trial_id"].tolist() == ["a", "b", "c"]  # d: b is better and faster
    # minimising the metric turns the front around: d has the lowest metric, c the lowest latency
    minimised = pareto_front(summary, "best_val_acc", -1.0, ["latency_ms"])
    assert minimised["trial_id"].tolist() == ["c", "d"]


def test_the_spec_checks_its_constraints_and_turns_measuring_on(tmp_path) -> None:
    raw = tiny_spec("c", str(tmp_path), constraints={"latency_ms": {"max": 2}})
    spec = validate_spec(raw)
    assert spec.base_config().measure_cost and spec.retrain_config({}).measure_cost
    assert not validate_spec(tiny_spec("c", str(tmp_path))).base_config().measure_cost
    for bad, words in [
        ({"flops": {"max": 1}}, "constraints.flops"),
        ({"latency_ms": {}}, "needs 'min', 'max' or both"),
        ({"params_m": {"min": 2, "max": 1}}, "min (2) must be <= max (1)"),
        ({"params_m": {"max": 1, "typo": 3}}, "typo"),
    ]:
        with pytest.raises(ConfigError) as err:
            validate_spec(tiny_spec("c", str(tmp_path), constraints=bad))
        assert words in str(err.value)


def test_constraints_come_from_the_command_line_too(tmp_path) -> None:
    from trainable.config import deep_merge, parse_overrides

    raw = deep_merge(
        tiny_spec("c", str(tmp_path)),
        parse_overrides(["constraints.latency_ms.max=2", "constraints.params_m.max=1"]),
    )
    spec = validate_spec(raw)
    assert spec.constraints["latency_ms"].max == 2 and spec.constraints["params_m"].max == 1
    assert describe(spec.constraints) == "latency_ms <= 2, params_m <= 1"
