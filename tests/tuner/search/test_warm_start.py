"""Warm start from an earlier search, and the searcher kinds, on real studies and a real search."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import run_cli
from tests.tuner.conftest import tiny_spec
from trainable.errors import ConfigError
from tuner.results.layout import ResultsDir
from tuner.search.searcher import make_sampler
from tuner.search.study import distributions, study_storage
from tuner.search.warm_start import load_warm_start, seed_study
from tuner.spec import validate_spec
from tuner.stages.manifest import Manifest

REPO = Path(__file__).resolve().parents[3]
LR = {"type": "loguniform", "low": 1e-4, "high": 3e-2}
DROPOUT = {"type": "uniform", "low": 0.0, "high": 0.5}


def earlier_search(root: Path, space: dict[str, Any], trials: list[dict[str, Any]]) -> Path:
    """A results folder as `tuner run` leaves it: spec, manifest and a study with these trials."""
    raw = tiny_spec("earlier", str(root), space=space)
    files = ResultsDir(root / "earlier")
    files.path.mkdir(parents=True)
    files.spec.write_text(yaml.safe_dump(raw))
    Manifest(files.manifest).update(status="finished")
    study = optuna.create_study(study_name="earlier", storage=study_storage(files))
    dists = distributions(validate_spec(raw).space)
    for t in trials:
        study.add_trial(
            optuna.trial.create_trial(
                state=t.get("state", TrialState.COMPLETE),
                value=t["value"],
                params=t["params"],
                distributions={k: dists[k] for k in t["params"]},
                intermediate_values={1: t["value"]},
            )
        )
    return files.path


def new_spec(root: Path, source: Path, **searcher: Any) -> Any:
    space = {
        "optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 3e-2},
        "label_smoothing": DROPOUT,
    }
    raw = tiny_spec("new", str(root), space=space)
    raw["searcher"] = {"seed": 0, "warm_start_from": str(source), **searcher}
    return validate_spec(raw)


def test_shared_keys_in_range_are_kept_and_the_rest_counted(tmp_path: Path) -> None:
    source = earlier_search(
        tmp_path,
        {"optimizer.lr": LR, "model.dropout": DROPOUT},
        [
            {"value": 0.9, "params": {"optimizer.lr": 0.01, "model.dropout": 0.1}},
            {
                "value": 1.2,
                "params": {"optimizer.lr": 0.02, "model.dropout": 0.3},
                "state": TrialState.PRUNED,
            },
            {"value": 0.7, "params": {"optimizer.lr": 2e-4, "model.dropout": 0.2}},  # below 1e-3
        ],
    )
    warm = load_warm_start(new_spec(tmp_path, source))
    assert warm is not None
    assert warm.shared_keys == ("optimizer.lr",) and warm.skipped == 1
    assert [(t.params, t.state, t.value) for t in warm.trials] == [
        ({"optimizer.lr": 0.01}, TrialState.COMPLETE, 0.9),
        ({"optimizer.lr": 0.02}, TrialState.PRUNED, 1.2),
    ]
    assert "2 trials from" in warm.line() and "1 outside the new ranges skipped" in warm.line()

    study = optuna.create_study(sampler=make_sampler(new_spec(tmp_path, source)))
    assert seed_study(study, warm) == 2
    assert seed_study(study, warm) == 0  # a restarted search does not add them twice
    assert len(study.trials) == 2 and study.best_value == 0.9  # the pruned one is no best


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"scheduler": {"metric": "val_acc", "mode": "max", "max_t": 3, "grace_period": 1}},
            "optimised val_loss (min)",
        ),
        (
            {"space": {"batch_size": {"type": "choice", "values": [16, 32]}}},
            "none of which this space searches",
        ),
    ],
)
def test_incompatible_earlier_search_is_one_line(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    source = earlier_search(
        tmp_path, {"optimizer.lr": LR}, [{"value": 0.9, "params": {"optimizer.lr": 0.01}}]
    )
    raw = tiny_spec("new", str(tmp_path), searcher={"warm_start_from": str(source)})
    raw.update(change)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_warm_start(validate_spec(raw))
    assert "\n" not in str(err.value) and str(err.value).startswith("searcher.warm_start_from: ")


def test_missing_earlier_folder_exits_2_before_anything_is_written(tmp_path: Path) -> None:
    raw = tiny_spec(
        "new", str(tmp_path / "results"), searcher={"warm_start_from": str(tmp_path / "nope")}
    )
    spec_file = tmp_path / "new.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    proc = run_cli("tuner", "run", spec_file)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        f"error: searcher.warm_start_from: {tmp_path / 'nope'} does not exist; "
        "pass a results folder (see: python -m tuner list)"
    )
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("searcher", "message"),
    [
        ({"kind": "cmaes"}, "searcher.kind"),
        ({"kind": "random", "n_startup_trials": 4}, "random has no model"),
        ({"kind": "gp", "multivariate": True}, "multivariate applies to kind tpe only"),
    ],
)
def test_bad_searcher_settings_are_config_errors(
    tmp_path: Path, searcher: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_spec(tiny_spec("s", str(tmp_path), searcher=searcher))


@pytest.mark.parametrize(
    ("kind", "sampler"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("random", optuna.samplers.RandomSampler),
        ("gp", optuna.samplers.GPSampler),
    ],
)
def test_each_kind_gets_its_optuna_sampler(tmp_path: Path, kind: str, sampler: type) -> None:
    spec = validate_spec(tiny_spec("s", str(tmp_path), searcher={"kind": kind, "seed": 3}))
    assert isinstance(make_sampler(spec), sampler)


@pytest.mark.slow
def test_gp_search_warm_started_from_a_finished_one(
    finished_search: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from tuner.integrations.cluster import RayOptions
    from tuner.stages import experiment

    source, _ = finished_search
    old = optuna.load_study(study_name="tiny", storage=study_storage(ResultsDir(source)))
    told = [t for t in old.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    raw = tiny_spec("warm", str(tmp_path), num_samples=3, retrain={"seeds": 1})
    raw["searcher"] = {"kind": "gp", "n_startup_trials": 2, "warm_start_from": str(source)}
    spec = validate_spec(raw)
    outcome = experiment.run(spec, raw, RayOptions())

    results = experiment.results_dir_for(spec)
    study = optuna.load_study(study_name="warm", storage=study_storage(results))
    warm = [t for t in study.trials if "warm_start_number" in t.user_attrs]
    assert sorted(t.user_attrs["warm_start_number"] for t in warm) == sorted(t.number for t in told)
    assert len(study.trials) == len(told) + 3 and outcome.trials == 3  # Tune's tables: its own
    recorded = Manifest(results.manifest).read()["warm_start"]
    assert recorded == {"from": str(source), "trials": len(told), "skipped": 0}
