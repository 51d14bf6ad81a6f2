"""A search with `constraints`, end to end on synthetic data: trials measure their cost, the
sampler is told, the winner meets the constraints, the report shows the trade-off; and a
search whose trials all break them ends in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.support.specs import tiny_spec
from trainable.config import ModelConfig
from trainable.errors import UserError
from trainable.model.network import build_network
from tuner.cli import main
from tuner.integrations.cluster import RayOptions
from tuner.search.study import load_study
from tuner.spec import validate_spec
from tuner.stages import experiment

pytestmark = pytest.mark.slow


def params_m(width: int) -> float:
    net = build_network(ModelConfig(name="smallnet", width=width, depth=2), 3)
    return sum(p.numel() for p in net.parameters()) / 1e6


def spec_with(tmp_path: Path, name: str, max_params_m: float) -> dict:
    raw = tiny_spec(name, str(tmp_path), num_samples=6)
    raw["space"] = {
        "model.width": {"type": "choice", "values": [4, 16]},
        "optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2},
    }
    raw["searcher"] = {"seed": 0, "n_startup_trials": 2}
    raw["scheduler"] = {"kind": "fifo", "metric": "val_loss", "mode": "min", "max_t": 1,
                        "grace_period": 1}  # fmt: skip
    raw["retrain"] = {"seeds": 1}
    raw["constraints"] = {"params_m": {"max": max_params_m}, "latency_ms": {"max": 10_000}}
    return raw


def test_the_winner_meets_the_constraints_and_the_report_shows_the_trade_off(
    ray_session: None, tmp_path: Path
) -> None:
    small, large = params_m(4), params_m(16)
    limit = (small + large) / 2  # width 4 meets it, width 16 breaks it
    raw = spec_with(tmp_path, "constrained", limit)
    spec = validate_spec(raw)
    outcome = experiment.run(spec, raw, RayOptions())
    results = experiment.results_dir_for(spec).path
    summary = pd.read_csv(results / "summary.csv", dtype={"trial_id": str})
    # every trial measured its cost; feasibility follows the measured parameter count
    assert summary["params_m"].notna().all() and (summary["latency_ms"] > 0).all()
    assert (summary["feasible"] == (summary["config.model.width"] == 4)).all()
    assert summary["feasible"].any() and not summary["feasible"].all()
    winner = summary[summary["trial_id"] == outcome.best_trial_id].iloc[0]
    assert winner["feasible"] and winner["params_m"] == pytest.approx(small, rel=1e-6)
    # Optuna's sampler was told each trial's violations (<= 0: met)
    study = load_study(results, "constrained")
    told = [t.constraints for t in study.trials]
    assert len(told) == len(summary)
    assert all(set(v) == {"params_m.max", "latency_ms.max"} for v in told)
    assert sorted(v["params_m.max"] <= 0 for v in told) == sorted(summary["feasible"].tolist())
    assert all(t.user_attrs["hpsearch_cost"]["params_m"] > 0 for t in study.trials)
    # the retrained model is the feasible config
    best_config = (results / "best_config.yaml").read_text()
    assert "width: 4" in best_config
    assert main(["report", str(results)]) == 0
    page = (results / "report" / "report.html").read_text()
    assert ">Constraints" in page and "met the constraints" in page
    assert (results / "report" / "cost_params_m.png").stat().st_size > 5_000
    assert json.loads((results / "manifest.json").read_text())["status"] == "finished"


def test_a_search_whose_trials_all_break_the_constraints_ends_in_one_line(
    ray_session: None, tmp_path: Path
) -> None:
    raw = spec_with(tmp_path, "impossible", 1e-6)
    raw["num_samples"] = 2
    spec = validate_spec(raw)
    with pytest.raises(UserError, match=r"no trial met the constraints \(params_m <= 1e-06"):
        experiment.run(spec, raw, RayOptions())
    manifest = json.loads((experiment.results_dir_for(spec).path / "manifest.json").read_text())
    assert manifest["status"] == "failed"
