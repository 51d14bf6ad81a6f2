"""trainable/model/cost.py: parameters, MACs and latency of a network, measured."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from trainable.model.cost import COST_KEYS, measure_cost
from tuner.spec import CostKey


def test_a_known_network_s_cost() -> None:
    # one 3x3 convolution, 3 -> 8 channels, padding 1, on 8x8: 8*8 outputs x 8 channels x 27
    # multiply-accumulates each; a linear layer 512 -> 10: 5,120 more
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(512, 10))
    net.train()
    cost = measure_cost(net, (3, 8, 8), torch.device("cpu"), torch.autocast("cpu", enabled=False))
    assert cost.params_m == (8 * 27 + 512 * 10 + 10) / 1e6
    assert cost.macs_m == (8 * 8 * 8 * 27 + 5120) / 1e6
    assert cost.latency_ms > 0
    assert net.training  # left as found
    assert set(cost.metrics()) == set(COST_KEYS)


def test_the_constraint_keys_are_the_measured_ones() -> None:
    assert set(CostKey.__args__) == set(COST_KEYS)  # type: ignore[attr-defined]


def test_a_training_run_reports_its_cost_every_epoch(tmp_path) -> None:
    from trainable.config import build_config
    from trainable.training.engine import train

    config = build_config({
        "dataset": {"name": "synthetic", "num_classes": 3, "image_size": 16,
                    "synthetic_train_size": 120, "synthetic_test_size": 30, "val_fraction": 0.25},
        "model": {"name": "smallnet", "width": 4, "depth": 1},
        "batch_size": 16, "epochs": 2, "device": "cpu", "measure_cost": True,
    })  # fmt: skip
    seen: list[dict[str, float]] = []
    with contextlib.redirect_stdout(None):
        train(config, tmp_path, report=lambda m, _d: seen.append(m))
    assert len(seen) == 2
    assert all(m["params_m"] > 0 and m["macs_m"] > 0 and m["latency_ms"] > 0 for m in seen)
    assert seen[0]["params_m"] == seen[1]["params_m"]  # measured once
