"""After the search: retrain the best config from scratch, touch the test split once, export.

The best trial's config is retrained for the full epoch budget with `retrain.seeds` seeds, as
Ray tasks with the trials' resources (so this runs on the cluster too), each evaluated once on
the test split. The reported figure is mean ± std test accuracy over seeds; the exported
checkpoint is the seed with the best *validation* score (choosing by test would leak it).
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import ray
import yaml

from trainable import checkpoint
from trainable.config import TrainConfig, build_config
from trainable.data import Splits
from trainable.engine import train
from trainable.errors import UserError
from trainable.evaluation import evaluate
from trainable.metrics import write_metrics
from tuner.limits import cap_gpu_memory

BEST_DIR = "best"
BEST_CONFIG = "best_config.yaml"


def _retrain_one(
    config_dict: dict[str, Any], out_dir: str, data: Splits, gpu_fraction: float
) -> dict[str, Any]:
    config = build_config(config_dict)
    cap_gpu_memory(gpu_fraction)
    out = Path(out_dir)
    result = train(config, out, report=lambda m, _d: None, data=data)
    if not result.best_checkpoint.exists():
        return {
            "seed": config.seed,
            "status": result.status,
            "reason": result.reason,
            "out_dir": out_dir,
        }
    state = checkpoint.load(result.best_checkpoint)
    test = evaluate(
        state, config, data.test, out / "test_metrics", f"test split, seed {config.seed}"
    )
    return {
        "seed": config.seed,
        "status": result.status,
        "reason": result.reason,
        "out_dir": out_dir,
        "best_val": result.best_metric,
        "monitor": result.monitor,
        "test": test,
    }


def retrain_best(
    best_config: TrainConfig, results_dir: Path, data_ref: Any, seeds: int, cpus: float, gpu: float
) -> dict[str, Any]:
    """Retrain on Ray, write `best/` (config, checkpoint, test metrics) and `best_config.yaml`."""
    best_dir = results_dir / BEST_DIR
    runs_dir = best_dir / "runs"
    configs = [best_config.model_copy(update={"seed": best_config.seed + i}) for i in range(seeds)]
    task = ray.remote(_retrain_one).options(num_cpus=cpus, num_gpus=gpu)
    runs = ray.get(
        [task.remote(c.to_dict(), str(runs_dir / f"seed-{c.seed}"), data_ref, gpu) for c in configs]
    )
    ok = [r for r in runs if "test" in r]
    if not ok:
        reasons = "; ".join(f"seed {r['seed']}: {r['status']} ({r['reason']})" for r in runs)
        raise UserError(
            f"every retraining run of the best config failed ({reasons}); the search's results "
            f"are kept in {results_dir}: lower the lr range or set retrain.epochs"
        )
    sign = 1 if ok[0]["monitor"] == "val_acc" else -1
    chosen = max(ok, key=lambda r: sign * r["best_val"])
    accs = [r["test"]["accuracy"] for r in ok]
    classes = list(chosen["test"]["per_class"])
    per_class_mean = {
        c: {
            k: statistics.fmean(r["test"]["per_class"][c][k] for r in ok)
            for k in ("accuracy", "precision", "recall", "f1")
        }
        for c in classes
    }
    summary = {
        "test_accuracy_mean": statistics.fmean(accs),
        "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "test_accuracy_by_seed": {str(r["seed"]): r["test"]["accuracy"] for r in ok},
        "failed_seeds": [r["seed"] for r in runs if "test" not in r],
        "per_class_mean_over_seeds": per_class_mean,
        "exported_seed": chosen["seed"],
        "exported_seed_val": chosen["best_val"],
        "epochs": best_config.epochs,
    }
    shutil.copy2(
        Path(chosen["out_dir"]) / "best" / checkpoint.FILENAME, best_dir / checkpoint.FILENAME
    )
    write_metrics(chosen["test"], best_dir / "test_metrics", f"test split, seed {chosen['seed']}")
    (best_dir / "test_summary.json").write_text(json.dumps(summary, indent=2))
    export_config(build_config(best_config.to_dict() | {"seed": chosen["seed"]}), results_dir)
    return summary


def export_config(config: TrainConfig, results_dir: Path, fmt: str = "yaml") -> Path:
    """`best_config.yaml|json` (the production-training input) and `best/config.yaml`."""
    (results_dir / BEST_DIR).mkdir(parents=True, exist_ok=True)
    (results_dir / BEST_DIR / "config.yaml").write_text(config.to_yaml())
    path = results_dir / f"best_config.{fmt}"
    text = config.to_yaml() if fmt == "yaml" else json.dumps(config.to_dict(), indent=2) + "\n"
    header = "# Best config of this search; run it with: python -m trainable train --config best_config.yaml\n"
    path.write_text(header + text if fmt == "yaml" else text)
    return path


def load_best_config(results_dir: Path) -> TrainConfig:
    path = results_dir / BEST_DIR / "config.yaml"
    if not path.is_file():
        raise UserError(
            f"{results_dir} has no {BEST_DIR}/config.yaml yet; finish the search first (python -m tuner resume {results_dir})"
        )
    return build_config(yaml.safe_load(path.read_text()))
