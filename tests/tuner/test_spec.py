from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_cli
from trainable.errors import ConfigError
from tuner.spec import load_spec, validate_spec

REPO = Path(__file__).resolve().parents[2]

GOOD: dict[str, Any] = {
    "name": "t",
    "base": {"dataset": {"name": "synthetic"}},
    "space": {
        "optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "batch_size": {"type": "choice", "values": [32, 64]},
        "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
        "model.width": {"type": "int", "low": 4, "high": 16},
    },
    "scheduler": {"max_t": 4, "grace_period": 1},
    "resources": {"cpus": 1, "gpu": 0.25},
}


def with_(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(GOOD)
    node = spec
    *parents, leaf = path.split("/")
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return spec


DELETE = object()


def test_shipped_search_spaces_validate() -> None:
    quick = load_spec(REPO / "search_spaces" / "quick.yaml")
    default = load_spec(REPO / "search_spaces" / "default.yaml")
    assert quick.resources.gpu == 0 and default.resources.gpu == 0.25
    assert default.num_samples >= 48 and default.scheduler.max_t >= 30
    assert {
        "optimizer.lr",
        "batch_size",
        "model.dropout",
        "label_smoothing",
        "optimizer.weight_decay",
    } <= set(default.space)
    # The main job: the recipe's decoupled keys on a subset, the winner refit on every image.
    assert {"optimizer.sgd.lr_per_1024", "optimizer.sgd.weight_decay_per_1024"} <= set(quick.space)
    retrain = quick.retrain_config({})
    assert quick.base_config().dataset.train_subset is not None
    assert retrain.dataset.train_subset is None and retrain.dataset.val_fraction == 0


def test_retrain_dataset_applies_to_the_retraining_only() -> None:
    raw = with_("base", {"dataset": {"name": "synthetic", "train_subset": 100, "val_subset": 20}})
    raw["retrain"] = {"dataset": {"train_subset": None}}
    spec = validate_spec(raw)
    assert spec.base_config().dataset.train_subset == 100
    retrain = spec.retrain_config({"optimizer.lr": 0.003})
    assert retrain.dataset.train_subset is None and retrain.dataset.val_subset == 20
    assert retrain.optimizer.lr == 0.003 and retrain.epochs == 4


def test_good_spec_and_base_epochs_follow_max_t() -> None:
    spec = validate_spec(GOOD)
    assert spec.base_config().epochs == 4


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        (with_("colour", "red"), ["unknown config key 'colour'", "scheduler"]),
        (with_("scheduler/max_tt", 3), ["unknown config key 'scheduler.max_tt'", "max_t"]),
        (with_("num_samples", "ten"), ["num_samples", "'ten'", "integer"]),
        (
            with_("space/batch_size", {"type": "choice", "values": []}),
            ["space.batch_size", "non-empty"],
        ),
        (
            with_("space/model.dropout", {"type": "uniform", "low": 0.4, "high": 0.1}),
            ["space.model.dropout", "low (0.4) must be < high (0.1)"],
        ),
        (
            with_("space/optimizer.lr", {"type": "loguniform", "low": 0, "high": 1e-2}),
            ["space.optimizer.lr", "low > 0"],
        ),
        (
            with_("space/optimizer.lr", {"type": "gaussian", "low": 0, "high": 1}),
            ["space.optimizer.lr.type", "'loguniform'"],
        ),
        (
            with_("space/optimizer.lrr", {"type": "uniform", "low": 0.1, "high": 0.2}),
            ["'optimizer.lrr' is not a trainer config key"],
        ),
        (
            with_("space/optimizer", {"type": "uniform", "low": 0.1, "high": 0.2}),
            ["'optimizer' is not a trainer config key"],
        ),
        (
            with_("space/model.dropout", {"type": "uniform", "low": 0.1, "high": 1.0}),
            ["space.model.dropout allows 1.0", "less than 1"],
        ),
        (
            with_("space/epochs", {"type": "int", "low": 1, "high": 3}),
            ["'epochs' cannot be searched"],
        ),
        (with_("resources/gpu", 0.3), ["resources", "divide 1", "0.3"]),
        (with_("resources/gpu", 1.5), ["resources", "whole number"]),
        (with_("scheduler/grace_period", 9), ["grace_period (9) must be <= max_t (4)"]),
        (with_("scheduler/mode", "min"), ["does not fit metric"]),
        (with_("base", {"optimizer": {"lr": -1}}), ["base: config key 'optimizer.lr': got -1"]),
        (with_("base", {"epochs": 9}), ["base.epochs (9) differs from scheduler.max_t (4)"]),
        (with_("name", "../escape"), ["name '../escape'"]),
        (with_("name", "/abs"), ["name '/abs'"]),
        (with_("name", ""), ["name ''"]),
        (with_("space", {}), ["at least one"]),
        (
            with_("retrain", {"dataset": {"root": "/elsewhere"}}),
            ["retrain.dataset key 'root' is not allowed", "train_subset and val_subset"],
        ),
        (
            with_("retrain", {"dataset": {"train_subset": 0}}),
            ["retrain.dataset: config key 'dataset.train_subset': got 0"],
        ),
        (with_("space", DELETE), ["space", "required"]),
    ],
)
def test_errors_name_the_key(spec: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        validate_spec(spec)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_cli_validate_and_run_refuse_bad_files_without_writing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_("space/batch_size", {"type": "choice", "values": []})))
    for cmd in (["validate", bad], ["run", bad, "--storage-path", tmp_path / "results"]):
        proc = run_cli("tuner", *cmd)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
        assert "space.batch_size" in proc.stderr
    assert not (tmp_path / "results").exists()
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    proc = run_cli("tuner", "validate", good)
    assert proc.returncode == 0 and "ok (4 searched keys" in proc.stdout
    # --set overrides a spec key, dotted, before validation; a bad override is one line.
    proc = run_cli(
        "tuner", "validate", good, "--set", "num_samples=3", "--set", "scheduler.max_t=2"
    )
    assert proc.returncode == 0 and "3 trials, max_t 2 epochs" in proc.stdout
    proc = run_cli("tuner", "validate", good, "--set", "num_samples=0")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "num_samples" in proc.stderr


def test_both_commands_say_their_version() -> None:
    for module in ("tuner", "trainable"):
        proc = run_cli(module, "--version")
        assert proc.returncode == 0 and proc.stdout.startswith("hpsearch 0.1.0"), proc.stderr


@pytest.mark.parametrize("uri", ["s3://my-bucket/results/", "gs://bucket-2/r", "s3://b.c.d"])
def test_object_store_uris_are_accepted_without_touching_the_network(uri: str) -> None:
    assert validate_spec(with_("storage_path", uri)).storage_path == uri.rstrip("/")


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("file:///tmp/results", "is not supported"),
        ("ftp://host/x", "is not supported"),
        ("s3://", "needs a bucket name"),
        ("s3://Bad_Bucket/x", "needs a bucket name"),
        ("s3://bucket/a/../b", "without '.' or '..' parts"),
        ("s3://bucket/./b", "without '.' or '..' parts"),
    ],
)
def test_bad_storage_uris_are_refused_in_one_line(uri: str, says: str) -> None:
    with pytest.raises(ConfigError, match=rf"storage_path.*{says}") as err:
        validate_spec(with_("storage_path", uri))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_failures", 1000),
        ("max_concurrent_trials", 10**9),
        ("searcher", {"n_startup_trials": 10**9}),
    ],
)
def test_counts_have_upper_bounds(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match="less than or equal"):
        validate_spec(with_(key, value))


@pytest.mark.parametrize(
    ("scheduler", "rungs"),
    [
        ({"max_t": 6, "grace_period": 1, "reduction_factor": 3}, [1, 3]),
        ({"max_t": 4, "grace_period": 1, "reduction_factor": 2}, [1, 2]),  # 4 is the last epoch
        ({"max_t": 30, "grace_period": 2, "reduction_factor": 2.5}, [2, 5, 13]),  # 12.5 -> 13
        ({"kind": "fifo", "max_t": 6, "grace_period": 1}, []),
    ],
)
def test_rungs_are_the_epochs_asha_decides_at(scheduler: dict[str, Any], rungs: list[int]) -> None:
    assert validate_spec(with_("scheduler", scheduler)).scheduler.rungs() == rungs


def test_checkpoint_interval_defaults_and_bounds() -> None:
    assert validate_spec(GOOD).checkpoint_interval_s == 30.0
    assert validate_spec(with_("checkpoint_interval_s", 0)).checkpoint_interval_s == 0
    with pytest.raises(ConfigError, match="checkpoint_interval_s"):
        validate_spec(with_("checkpoint_interval_s", -1))


def test_base_point_is_the_base_configs_values_of_the_searched_keys() -> None:
    raw = with_("base/batch_size", 32)
    raw["base"]["model"] = {"width": 8}
    spec = validate_spec(raw)
    point, why = spec.base_point()
    # TrainConfig's defaults where the base does not set a key.
    assert why == "" and point == {
        "optimizer.lr": 3e-3,
        "batch_size": 32,
        "model.dropout": spec.base_config().model.dropout,
        "model.width": 8,
    }


def test_a_base_value_outside_its_range_is_not_a_trial() -> None:
    spec = validate_spec(with_("base/optimizer", {"lr": 0.5}))
    point, why = spec.base_point()
    assert point is None and "optimizer.lr" in why and "outside" in why


@pytest.mark.parametrize(
    ("param", "inside", "outside"),
    [
        ({"type": "loguniform", "low": 1e-4, "high": 1e-2}, [1e-4, 1e-3, 1e-2], [0.1, True, "x"]),
        ({"type": "int", "low": 4, "high": 16}, [4, 16, 8.0], [3, 8.5, 17]),
        ({"type": "choice", "values": [32, "a"]}, [32, "a"], [64, None]),
    ],
)
def test_param_contains(param: dict[str, Any], inside: list[Any], outside: list[Any]) -> None:
    from tuner.spec import Param

    p = Param(**param)
    assert all(p.contains(v) for v in inside) and not any(p.contains(v) for v in outside)


def test_the_config_reference_is_generated_from_the_models() -> None:
    from tuner.reference import markdown

    page = (REPO / "docs" / "config-reference.md").read_text()
    assert page == markdown(), "stale: run python -m tuner.reference > docs/config-reference.md"
    assert "| `budget.total_s` | float | `required` | > 0 |" in page
    assert "| `dataset.download` | bool | `False` |  |" in page
