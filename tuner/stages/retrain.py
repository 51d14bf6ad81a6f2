"""After the search: retrain the best config from scratch, touch the test split once, export.

The best trial's config is retrained for the full epoch budget with `retrain.seeds` seeds, as
Ray tasks with the trials' resources (so this runs on the cluster too), each evaluated once on
the test split. The reported figure is mean ± std test accuracy over seeds; the exported
checkpoint is the seed with the best *validation* score (choosing by test would leak it).

Each seed is its own resumable step: its run folder `best/runs/seed-<k>/` is a trainer run
(resumed from its `last/` checkpoint after a kill) and `outcome.json`, written last and
atomically, marks it done; a done seed is never trained again. Export rewrites `best/` and
`best_config.yaml` from the seeds' outcomes, each file atomically.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import yaml

from trainable.config import TrainConfig, build_config
from trainable.data.datasets import Splits
from trainable.errors import UserError
from trainable.files import atomic, checkpoint
from trainable.files.checkpoint import SavePolicy
from trainable.files.run_dir import RunDir
from trainable.training.engine import TrainResult, train
from trainable.training.evaluation import evaluate
from trainable.training.horizon import Deadline
from trainable.training.metrics import write_metrics
from trainable.training.optim import scale_lr
from trainable.vocab import EPOCHS_TOTAL, REASON, Objective, Status
from tuner.integrations.cluster import user_errors_from_ray
from tuner.results import bucket
from tuner.results.layout import ResultsDir
from tuner.search.limits import cap_gpu_memory

# A diverging seed is trained again at these fractions of the winner's learning rate.
RETRY_LR_SCALES = (0.5, 0.25)
# A seed's checkpoint every `checkpoint_interval_s` (default the trainer's interval) and at
# its end, not every epoch: a refit of 1,329 epochs of 0.24 s on an 8-px folder spent 0.056 s
# an epoch writing its 24 MB checkpoint (bench/results/own_data_digits_big96_s15.json's run).
DEFAULT_SAVE_EVERY_S = checkpoint.DEFAULT_INTERVAL_S
LR_SCALE_FILE = "lr_scale.txt"


def _retrain_one(
    config_dict: dict[str, Any],
    results: ResultsDir,
    data: Splits,
    gpu_fraction: float,
    save_every_s: float = DEFAULT_SAVE_EVERY_S,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """One seed, idempotent: a finished run returns its outcome, a killed one resumes (from
    its last checkpoint, written every `save_every_s` and at its end). With a bucket, the run
    folder is this node's working copy, published when the seed is done. A `deadline`
    re-plans its epochs as it trains (`trainable.training.horizon`)."""
    config = build_config(config_dict)
    if results.remote is not None:  # this node's own working copy of the same results
        results = bucket.results_at(results.remote)
        bucket.fetch_run(results, config.seed)
    out = results.retrain_run(config.seed)
    done = ResultsDir.run_outcome(out)
    if done.is_file():
        return dict(json.loads(done.read_text()))
    if config.dataset.val_fraction == 0:  # a refit: the search's validation images train too
        data = data.without_validation()
    cap_gpu_memory(gpu_fraction)
    result, lr_scale, diverged = _train_until_stable(
        config, out, data, SavePolicy(interval_s=save_every_s), deadline=deadline
    )
    outcome: dict[str, Any] = {
        "seed": config.seed,
        "status": str(result.status),
        REASON: result.reason,
        "out_dir": str(out),
        "lr_scale": lr_scale,
        "diverged_at_lr_scale": diverged,
        "epochs": result.epochs_planned,  # a deadline's last plan, else the config's
        "epochs_planned": config.epochs,
    }
    config = scale_lr(config, lr_scale).model_copy(update={"epochs": result.epochs_planned})
    if result.best_checkpoint.exists():
        state = checkpoint.load(result.best_checkpoint)
        test = evaluate(
            state, config, data.test, RunDir(out).test_metrics, f"test split, seed {config.seed}"
        )
        outcome |= {"best_val": result.best_metric, "monitor": result.monitor, "test": test}
    atomic.write_text(done, json.dumps(outcome, indent=2))
    bucket.publish_run(results, config.seed)
    return outcome


def _train_until_stable(
    config: TrainConfig,
    out: Path,
    data: Splits,
    save_policy: SavePolicy,
    scales: tuple[float, ...] = (1.0, *RETRY_LR_SCALES),
    deadline: Deadline | None = None,
) -> tuple[TrainResult, float, list[float]]:
    """Train; a run whose loss diverges is trained again from scratch at a lower learning
    rate (a winner found on a subset can be too aggressive for more data), at most
    `len(scales) - 1` times. Returns the last result, its lr scale and the scales that
    diverged. The scale in use is kept in the run folder, so a killed retry resumes at it."""
    scale_file = out / LR_SCALE_FILE
    start = scales.index(float(scale_file.read_text())) if scale_file.is_file() else 0
    diverged = list(scales[:start])
    for scale in scales[start:]:
        last = RunDir(out).last_checkpoint
        result = train(
            scale_lr(config, scale),
            out,
            report=_Progress(config),
            data=data,
            resume_from=last if last.is_file() else None,
            save_policy=save_policy,
            deadline=deadline,
        )
        if result.status != Status.DIVERGED or scale == scales[-1]:
            return result, scale, diverged
        diverged.append(scale)
        following = scales[scales.index(scale) + 1]
        print(
            f"seed {config.seed} diverged ({result.reason}); training it again from scratch at "
            f"{following:g}x the learning rate",
            flush=True,
        )
        for stale in RunDir(out).checkpoint_folders():  # from scratch, not from a NaN state
            shutil.rmtree(stale, ignore_errors=True)
        atomic.write_text(scale_file, repr(following))
    raise AssertionError("unreachable: the last scale returns")


class _Progress:
    """A retraining seed's epochs on the driver's terminal (Ray forwards what it prints): the
    first and last epoch, and one line every `every_s` seconds between. On a small folder an
    epoch takes a tenth of a second, and a line each made hundreds of lines."""

    def __init__(self, config: TrainConfig, every_s: float = 5.0) -> None:
        self.config, self.every_s, self.last = config, every_s, -math.inf

    def __call__(self, m: dict[str, float], _checkpoint: Any = None) -> None:
        epoch, now = int(m["epoch"]), time.monotonic()
        total = int(m.get(EPOCHS_TOTAL, self.config.epochs))  # a deadline re-plans it
        if epoch not in (1, total) and now - self.last < self.every_s:
            return
        self.last = now
        print(
            f"retraining seed {self.config.seed}: epoch {epoch}/{total}  "
            f"train loss {m['train_loss']:.4f}  {m['epoch_s']:.1f} s  "
            f"{m['images_per_s']:.0f} img/s",
            flush=True,
        )


def seed_configs(best_config: TrainConfig, seeds: int) -> list[TrainConfig]:
    return [best_config.model_copy(update={"seed": best_config.seed + i}) for i in range(seeds)]


def retrain_seeds(
    configs: list[TrainConfig],
    results: ResultsDir,
    data_ref: Any,
    cpus: float,
    gpu: float,
    on_done: Callable[[dict[str, Any]], None],
    save_every_s: float = DEFAULT_SAVE_EVERY_S,
    deadline: Deadline | None = None,
) -> list[dict[str, Any]]:
    """Run every seed on Ray; `on_done(outcome)` as each one finishes (to record it)."""
    task = ray.remote(_retrain_one).options(num_cpus=cpus, num_gpus=gpu)
    pending = [
        task.remote(c.to_dict(), results, data_ref, gpu, save_every_s, deadline) for c in configs
    ]
    outcomes = []
    with user_errors_from_ray():
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            outcome = ray.get(ready[0])
            on_done(outcome)
            outcomes.append(outcome)
    return sorted(outcomes, key=lambda o: int(o["seed"]))


def export(
    best_config: TrainConfig, outcomes: list[dict[str, Any]], results: ResultsDir
) -> dict[str, Any]:
    """`best/` (checkpoint, test metrics, test_summary.json, config) and `best_config.yaml`."""
    ok = [r for r in outcomes if "test" in r]
    if not ok:
        reasons = "; ".join(f"seed {r['seed']}: {r['status']} ({r[REASON]})" for r in outcomes)
        raise UserError(
            f"every retraining run of the best config failed ({reasons}); the search's results "
            f"are kept in {results.where}: lower the lr range or set retrain.epochs"
        )
    chosen = _exported(ok)
    # The epochs the exported seed trained: a deadline may have re-planned the planned ones.
    best_config = best_config.model_copy(
        update={"epochs": int(chosen.get("epochs", best_config.epochs))}
    )
    summary = _test_summary(ok, outcomes, chosen, best_config.epochs)
    summary["refit"] = best_config.dataset.val_fraction == 0
    # This machine's copy of the run (the outcome's out_dir may name another node's).
    source = RunDir(results.retrain_run(chosen["seed"])).best_checkpoint
    with atomic.atomic_path(results.best_checkpoint) as tmp:
        shutil.copyfile(source, tmp)
    write_metrics(chosen["test"], results.test_metrics, f"test split, seed {chosen['seed']}")
    atomic.write_text(results.test_summary, json.dumps(summary, indent=2))
    exported = scale_lr(best_config, float(chosen.get("lr_scale", 1.0)))
    export_config(build_config(exported.to_dict() | {"seed": chosen["seed"]}), results)
    return summary


def _exported(ok: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed with the best validation score; after a refit (no validation split, NaN
    scores) the first seed: choosing by test would leak it."""
    scored = [r for r in ok if not math.isnan(r["best_val"])]
    if not scored:
        return ok[0]
    objective = Objective.of(ok[0]["monitor"])
    return max(scored, key=lambda r: objective.sign * r["best_val"])


def _test_summary(
    ok: list[dict[str, Any]], outcomes: list[dict[str, Any]], chosen: dict[str, Any], epochs: int
) -> dict[str, Any]:
    accs = [r["test"]["accuracy"] for r in ok]
    per_class_mean = {
        c: {
            k: statistics.fmean(r["test"]["per_class"][c][k] for r in ok)
            for k in ("accuracy", "precision", "recall", "f1")
        }
        for c in chosen["test"]["per_class"]
    }
    return {
        "test_accuracy_mean": statistics.fmean(accs),
        "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "test_accuracy_by_seed": {str(r["seed"]): r["test"]["accuracy"] for r in ok},
        "test_balanced_accuracy_mean": statistics.fmean(r["test"]["balanced_accuracy"] for r in ok),
        "test_macro_f1_mean": statistics.fmean(r["test"]["macro_f1"] for r in ok),
        "failed_seeds": [r["seed"] for r in outcomes if "test" not in r],
        # Seeds that diverged and were trained again at a lower learning rate: {seed: scale}.
        "lr_retried_seeds": {
            str(r["seed"]): r["lr_scale"] for r in outcomes if r.get("lr_scale", 1.0) != 1.0
        },
        "per_class_mean_over_seeds": per_class_mean,
        "exported_seed": chosen["seed"],
        "exported_seed_val": None if math.isnan(chosen["best_val"]) else chosen["best_val"],
        "epochs": epochs,
    }


def export_config(config: TrainConfig, results: ResultsDir, fmt: str = "yaml") -> Path:
    """`best_config.yaml|json` (the production-training input) and `best/config.yaml`."""
    atomic.write_text(results.best_trainer_config, config.to_yaml())
    path = results.best_config(fmt)
    header = f"# Best config of this search; run it with: python -m trainable train --config {path.name}\n"
    text = header + config.to_yaml() if fmt == "yaml" else json.dumps(config.to_dict(), indent=2)
    atomic.write_text(path, text + ("" if fmt == "yaml" else "\n"))
    return path


def load_best_config(results: ResultsDir) -> TrainConfig:
    path = results.best_trainer_config
    if not path.is_file():
        raise UserError(
            f"{results.where} has no {path.relative_to(results.path)} yet; finish the search "
            f"first (python -m tuner resume {results.where})"
        )
    return build_config(yaml.safe_load(path.read_text()))
