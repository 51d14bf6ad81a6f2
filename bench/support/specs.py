"""A tiny search spec (synthetic data, width-8 smallnet, 8 trials of 3 epochs) that runs in
seconds on a CPU: the tests' end-to-end searches and the benchmarks of fixed costs use it; and
`read_spec`, a benchmark's spec file with its data root."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

TINY_BASE: dict[str, Any] = {
    "dataset": {
        "name": "synthetic",
        "num_classes": 3,
        "image_size": 16,
        "synthetic_train_size": 600,
        "synthetic_test_size": 150,
        "val_fraction": 0.25,
    },
    "model": {"name": "smallnet", "width": 8, "depth": 2},
    "batch_size": 32,
    "device": "cpu",
    "precision": "fp32",
}


def tiny_spec(name: str, storage: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        # A copy: tests edit their spec's base, and an edit of the shared dict leaked into
        # every later test (test_dashboard's 6,000 images once reached test_refit).
        "base": copy.deepcopy(TINY_BASE),
        "space": {
            # wide enough that some configs learn much worse than others, so ASHA has cuts to make
            "optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 3e-2},
            "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
            "label_smoothing": {"type": "uniform", "low": 0.0, "high": 0.2},
        },
        "searcher": {"seed": 1, "n_startup_trials": 3},
        # val_loss, not val_acc: accuracy on a tiny validation split ties often (e.g. at chance),
        # and ASHA never cuts a trial that ties its rung's cutoff.
        "scheduler": {
            "metric": "val_loss",
            "mode": "min",
            "max_t": 3,
            "grace_period": 1,
            "reduction_factor": 3,
        },
        "num_samples": 8,
        "max_concurrent_trials": 2,
        "resources": {"cpus": 1, "gpu": 0},
        "retrain": {"seeds": 2},
        "storage_path": storage,
    }
    spec.update(overrides)
    return spec


def read_spec(path: Path, data_root: str | None) -> dict[str, Any]:
    """The spec file at `path` as a dict, its base dataset read from `data_root` (None: the
    spec's own root; a synthetic dataset has no root and is left as it is)."""
    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    if data_root is not None and raw.get("base", {}).get("dataset", {}).get("name") != "synthetic":
        raw["base"]["dataset"]["root"] = data_root
    return raw
