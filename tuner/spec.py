"""The search-space file: a frozen, typed schema validated before Ray starts.

    name: cifar10-quick          # results go to <storage_path>/<name>/
    base: {...}                  # a trainer config (same keys as configs/*.yaml)
    space:                       # dotted trainer key -> distribution
      optimizer.lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
      batch_size: {type: choice, values: [128, 256]}
    searcher: {kind: tpe, seed: 0, n_startup_trials: 8}
    scheduler: {metric: val_acc, mode: max, max_t: 30, grace_period: 2, reduction_factor: 3}
    ...

Every problem is a `ConfigError` with one line naming the key; nothing is written before this
validation passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from trainable.config import (
    StrictModel,
    TrainConfig,
    build_config,
    clip,
    deep_merge,
    one_line_error,
    read_yaml,
)
from trainable.errors import ConfigError, UserError
from trainable.files import checkpoint
from trainable.files.storage import check_uri, is_uri
from trainable.vocab import Mode, Objective, check_mode

# \Z, not $: `$` also matches before a trailing newline.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


class Param(StrictModel):
    """One searched trainer key: `loguniform`/`uniform` (floats), `int`, or `choice`."""

    type: Literal["loguniform", "uniform", "int", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False  # int only: sample on a log scale
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Param:
        if self.type == "choice":
            if not self.values:
                raise ValueError("choice needs a non-empty 'values' list")
            if self.low is not None or self.high is not None:
                raise ValueError("choice takes 'values', not 'low'/'high'")
            return self
        if self.values is not None:
            raise ValueError(f"{self.type} takes 'low' and 'high', not 'values'")
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs both 'low' and 'high'")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("'low' and 'high' must be finite numbers")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if (self.type == "loguniform" or self.log) and self.low <= 0:
            raise ValueError(f"a log-scale distribution needs low > 0, got {self.low}")
        if self.type == "int" and not (
            float(self.low).is_integer() and float(self.high).is_integer()
        ):
            raise ValueError("int needs whole-number 'low' and 'high'")
        return self

    def contains(self, value: Any) -> bool:
        """Whether `value` is one this distribution can propose."""
        if self.type == "choice":
            return value in (self.values or [])
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        assert self.low is not None and self.high is not None  # checked by _check
        if self.type == "int" and not float(value).is_integer():
            return False
        return self.low <= value <= self.high

    def corners(self) -> list[Any]:
        """Values at the edges of the distribution, to validate against the trainer's ranges."""
        if self.type == "choice":
            return list(self.values or [])
        assert self.low is not None and self.high is not None  # checked by _check
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


class SearcherSpec(StrictModel):
    """Which Optuna sampler proposes trials (all of them see ASHA-stopped trials as pruned).

    `tpe` (tree-structured Parzen estimator), `random` (the baseline every searcher must beat),
    `gp` (Gaussian process with log-expected-improvement; its cost grows with the trial count
    cubed, so meant for tens to a few hundred trials). `warm_start_from` seeds a new study with
    an earlier search's finished and pruned trials (see tuner/search/warm_start.py).
    """

    kind: Literal["tpe", "random", "gp"] = "tpe"
    seed: int = Field(0, ge=0, le=2**32 - 1)  # numpy seeds are 32-bit
    n_startup_trials: int = Field(8, ge=1, le=100_000)  # random trials before a model is fit
    multivariate: bool = True  # tpe: model parameter interactions jointly
    # tpe: running trials count as if they had scored badly, so concurrent trials spread out
    # instead of all proposing the same point (Optuna's constant liar).
    constant_liar: bool = False
    warm_start_from: str | None = None  # an earlier results folder (same metric and mode)
    # The base config's own values are the study's first trial, so the search always measures
    # the default it must beat (and retrains it when nothing beat it).
    base_first: bool = True
    # End the search once this many trials in a row have ended without beating the best by
    # more than retrain.min_gain (tuner/search/patience.py); None: run to num_samples or
    # time_budget_s. With a budget, the final training gets the time it leaves.
    patience: int | None = Field(None, ge=1, le=100_000)
    # Two runs of the same spec and seed give the same trials, stops and winner, concurrent
    # trials included: trials run in batches of max_concurrent_trials (tuner/search/lockstep.py).
    # Costs idle slots while a batch waits for its slowest trial.
    reproducible: bool = False

    @model_validator(mode="after")
    def _check(self) -> SearcherSpec:
        if self.kind == "random" and "n_startup_trials" in self.model_fields_set:
            raise ValueError("n_startup_trials applies to kind tpe or gp; random has no model")
        for tpe_only in ("multivariate", "constant_liar"):
            if self.kind != "tpe" and tpe_only in self.model_fields_set:
                raise ValueError(f"{tpe_only} applies to kind tpe only, not {self.kind}")
        return self


class SchedulerSpec(StrictModel):
    """ASHA: stop trials whose metric trails at a rung; `max_t` is also every trial's epochs.

    `kind: fifo` runs every trial to max_t (the baseline ASHA is measured against).
    """

    kind: Literal["asha", "fifo"] = "asha"
    metric: Literal["val_acc", "val_loss", "val_balanced_acc"] = "val_acc"
    mode: Mode = "max"
    max_t: int = Field(30, ge=1, le=10000)
    grace_period: int = Field(2, ge=1)
    reduction_factor: float = Field(3.0, gt=1.0)

    @model_validator(mode="after")
    def _check(self) -> SchedulerSpec:
        if self.grace_period > self.max_t:
            raise ValueError(f"grace_period ({self.grace_period}) must be <= max_t ({self.max_t})")
        check_mode(self.metric, self.mode)
        return self

    @property
    def objective(self) -> Objective:
        return Objective(self.metric, self.mode)

    def rungs(self) -> list[int]:
        """The epochs at which ASHA compares a trial (Ray's milestones grace x factor^k below
        max_t, reached at the first whole epoch at or past each); none under FIFO."""
        if self.kind != "asha":
            return []
        out, milestone = [], float(self.grace_period)
        while milestone < self.max_t:
            out.append(math.ceil(milestone - 1e-9))
            milestone *= self.reduction_factor
        return sorted(set(out))


class ResourcesSpec(StrictModel):
    cpus: float = Field(1.0, gt=0, le=1024)
    gpu: float = Field(0.0, ge=0, le=64)  # a fraction (0.25 = four trials per GPU) or whole GPUs
    # Per-trial host-memory cap: Ray schedules by it and each trial process may grow by at most
    # this much, so a trial that blows up fails alone with an out-of-memory error instead of
    # the kernel's OOM killer taking a neighbour (or the node). None: no cap.
    memory_mb: int | None = Field(None, ge=64, le=16_777_216)

    @model_validator(mode="after")
    def _check(self) -> ResourcesSpec:
        if 0 < self.gpu < 1 and not math.isclose(1 / self.gpu, round(1 / self.gpu), abs_tol=1e-9):
            raise ValueError(f"a GPU fraction must divide 1 (0.5, 0.25, 0.2, ...), got {self.gpu}")
        if self.gpu > 1 and not float(self.gpu).is_integer():
            raise ValueError(f"more than one GPU must be a whole number, got {self.gpu}")
        return self


class RetrainSpec(StrictModel):
    epochs: int | None = Field(None, ge=1, le=10000)  # None: scheduler.max_t
    seeds: int = Field(2, ge=1, le=100)
    # Refit: retrain the winner on train + validation (the usual last step once the search has
    # used the validation split); each seed's final epoch is its model, and the first seed is
    # exported (there is no validation score left to choose by, and test would leak).
    refit: bool = False
    # Trainer `dataset` keys for the retraining only: search on a subset (a cheap proxy whose
    # ranking carries over), retrain the winner on more images, e.g. {train_subset: null}.
    # The retraining then loads its own data once on the driver; the test split is unchanged.
    dataset: dict[str, Any] = Field(default_factory=dict)
    # Each seed's resources; None: a trial's (`resources`). One seed on a whole machine
    # (what `tuner init` plans) trains with every core instead of one.
    cpus: float | None = Field(None, gt=0, le=1024)
    gpu: float | None = Field(None, ge=0, le=64)
    # The gain over the base config's own trial (same epoch, the search's metric) the winner
    # needs to be retrained instead of the base. None: one standard error of the difference of
    # two accuracies on the validation split (val_acc, val_balanced_acc; 0 for val_loss); 0:
    # any gain.
    min_gain: float | None = Field(None, ge=0, le=1)


class BudgetSpec(StrictModel):
    """The whole run's wall time, end to end (`time_budget_s` is the search's alone).

    When the search ends, the final training gets the epochs that fit what is left: the time
    since the run started is subtracted from `total_s`, then `after_retrain_s` (the test
    evaluation and export) and `reserve_s`, and the rest is divided by `retrain_epoch_s`, one
    epoch of the final training on this machine (`tuner init` measures it), rounded to the
    nearest epoch. At least one epoch, at most `max_epochs`; without a budget,
    `retrain.epochs` holds."""

    total_s: float = Field(gt=0)
    retrain_epoch_s: float = Field(gt=0)
    after_retrain_s: float = Field(0.0, ge=0)
    # Held back for what the estimates miss (the timed epoch's error, the export).
    reserve_s: float = Field(0.0, ge=0)
    max_epochs: int = Field(40, ge=1, le=10000)
    # With these two, the epoch time is re-estimated from what the search's trials measured
    # on the real data: their training images/s times `speedup` (the whole machine's speed
    # over a trial's, as `tuner init` measured both), over `retrain_images` images an epoch.
    retrain_images: int | None = Field(None, ge=1)
    speedup: float | None = Field(None, gt=0)

    def epoch_s(self, trial_images_per_s: float | None = None) -> float:
        """One epoch of the final training: from the trials' measured speed when known."""
        if trial_images_per_s and self.retrain_images and self.speedup:
            return self.retrain_images / (trial_images_per_s * self.speedup)
        return self.retrain_epoch_s

    def left_s(self, elapsed_s: float) -> float:
        """The final training's seconds once `elapsed_s` are spent: the rest of `total_s`
        less the test evaluation and export and the reserve (may be negative)."""
        return self.total_s - elapsed_s - self.after_retrain_s - self.reserve_s

    def epochs(
        self,
        elapsed_s: float,
        trial_images_per_s: float | None = None,
        epoch_s: float | None = None,
    ) -> int:
        """The final training's epochs in what is left; `epoch_s` when measured, else derived.
        The nearest whole number, not the floor: flooring left up to an epoch unused on top
        of the reserve (35 s, 6%, of a 10-minute CIFAR-10 run)."""
        left = self.left_s(elapsed_s)
        per = epoch_s if epoch_s else self.epoch_s(trial_images_per_s)
        return max(1, min(self.max_epochs, math.floor(left / per + 0.5)))


class TrackingSpec(StrictModel):
    # MLflow tracking server for this search (http://host:5000, sqlite:///mlflow.db, ...);
    # None: MLFLOW_TRACKING_URI if set, else no tracking (tuner.integrations.tracking).
    uri: str | None = Field(None, min_length=1)


class Bound(StrictModel):
    """Limits on one measured cost (`constraints`): `min`, `max` or both, inclusive."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Bound:
        given = [v for v in (self.min, self.max) if v is not None]
        if not given:
            raise ValueError("a constraint needs 'min', 'max' or both")
        if not all(math.isfinite(v) for v in given):
            raise ValueError("a constraint's 'min' and 'max' must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must be <= max ({self.max:g})")
        return self


# What a constraint may limit: the figures trainable.model.cost measures (millions of
# parameters, millions of multiply-accumulates an image, milliseconds for one image).
CostKey = Literal["params_m", "macs_m", "latency_ms"]


class SearchSpec(StrictModel):
    name: str
    base: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Param]
    searcher: SearcherSpec = SearcherSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    num_samples: int = Field(16, ge=1, le=100000)
    max_concurrent_trials: int | None = Field(None, ge=1, le=100_000)
    time_budget_s: float | None = Field(None, gt=0)
    resources: ResourcesSpec = ResourcesSpec()
    retrain: RetrainSpec = RetrainSpec()
    budget: BudgetSpec | None = None
    tracking: TrackingSpec = TrackingSpec()
    max_failures: int = Field(2, ge=0, le=100)  # retries per trial, from its last checkpoint
    # A trial writes a checkpoint at each ASHA rung, at its last epoch, and once this many
    # seconds have passed since its last one (0: every epoch); a retraining seed at its end
    # and at the same interval. A killed trial or seed loses at most this much training plus
    # the epoch in progress; short epochs pay for fewer writes.
    checkpoint_interval_s: float = Field(checkpoint.DEFAULT_INTERVAL_S, ge=0, le=86_400)
    storage_path: str = "results"
    # Deployment limits measured per trial (tuner.results.constraints): the sampler steers
    # away from trials that break them and the winner is the best trial that meets them all.
    constraints: dict[CostKey, Bound] = Field(default_factory=dict)

    @field_validator("storage_path")
    @classmethod
    def _check_storage(cls, path: str) -> str:
        # An object store (s3://) is checked for syntax only: validation touches no network.
        if is_uri(path):
            try:
                return check_uri(path)
            except UserError as err:
                raise ValueError(str(err)) from err
        return path

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not NAME_PATTERN.match(name) or name in {".", ".."}:
            raise ValueError(
                f"name {clip(repr(name), 40)} must be 1-100 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (it becomes a folder name)"
            )
        return name

    @model_validator(mode="after")
    def _check_space(self) -> SearchSpec:
        if not self.space:
            raise ValueError("space must search at least one trainer key")
        return self

    @model_validator(mode="after")
    def _check_reproducible(self) -> SearchSpec:
        """What would make a reproducible search depend on the machine's speed or size."""
        if not self.searcher.reproducible:
            return self
        why = {
            "time_budget_s": "a time budget ends the search at a moment that depends on the "
            "machine's speed; bound it by num_samples",
            "searcher.patience": "patience counts trials in the order they end; bound the "
            "search by num_samples",
            "constraints.latency_ms": "latency is measured, and varies from run to run; "
            "constrain params_m or macs_m",
        }
        given = {
            "time_budget_s": self.time_budget_s is not None,
            "searcher.patience": self.searcher.patience is not None,
            "constraints.latency_ms": "latency_ms" in self.constraints,
        }
        for key, present in given.items():
            if present:
                raise ValueError(f"searcher.reproducible cannot go with {key}: {why[key]}")
        if self.max_concurrent_trials is None:
            raise ValueError(
                "searcher.reproducible needs max_concurrent_trials (the size of its batches; "
                "taken from the cluster's size, the search would change with the machine)"
            )
        return self

    def retrain_config(self, params: dict[str, Any], epochs: int | None = None) -> TrainConfig:
        """The winner's trainer config for retraining: its sampled params, the retraining
        epochs (`epochs`, else `retrain.epochs`, else max_t), and with `retrain.refit` every
        training image (no validation split)."""
        epochs = epochs or self.retrain.epochs or self.scheduler.max_t
        merged = deep_merge(self.base_config().to_dict(), trial_overrides(params))
        merged = deep_merge(merged, {"epochs": epochs})
        merged = deep_merge(merged, {"dataset": self.retrain.dataset})
        if self.retrain.refit:
            merged = deep_merge(
                merged, {"dataset": {"val_fraction": 0.0}, "early_stopping": {"patience": None}}
            )
        return build_config(merged)

    def base_point(self) -> tuple[dict[str, Any] | None, str]:
        """The base config's values of the searched keys, or None and why it cannot be a
        trial (a value outside its searched range)."""
        config, point = self.base_config(), {}
        for key, param in self.space.items():
            value: Any = config
            for part in key.split("."):
                value = getattr(value, part)
            if not param.contains(value):
                return None, f"base value of {key} ({value!r}) lies outside its searched range"
            point[key] = value
        return point, ""

    def base_config(self) -> TrainConfig:
        """The base trainer config; its epochs are the scheduler's max_t. Constraints turn
        on the trainer's cost measurement."""
        fixed: dict[str, Any] = {"epochs": self.scheduler.max_t}
        if self.constraints:
            fixed["measure_cost"] = True
        return build_config(deep_merge(self.base, fixed))


def _leaf_fields(model: type[BaseModel] = TrainConfig, prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys |= _leaf_fields(ann, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def trial_overrides(flat: Mapping[str, Any]) -> dict[str, Any]:
    """`{"optimizer.lr": 0.01}` -> `{"optimizer": {"lr": 0.01}}`."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def validate_spec(raw: Any, source: str = "search space") -> SearchSpec:
    if not isinstance(raw, Mapping):
        got = "an empty file" if raw is None else type(raw).__name__
        raise ConfigError(f"{source} must be a mapping of keys to values, got {got}")
    try:
        spec = SearchSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(one_line_error(err, SearchSpec)) from err
    if "epochs" in spec.base and spec.base["epochs"] != spec.scheduler.max_t:
        raise ConfigError(
            f"base.epochs ({clip(repr(spec.base['epochs']))}) differs from scheduler.max_t ({spec.scheduler.max_t}); "
            "drop base.epochs: every trial trains for max_t epochs"
        )
    try:
        base = spec.base_config()
    except ConfigError as err:
        raise ConfigError(f"base: {err}") from err
    if base.dataset.val_fraction == 0:
        raise ConfigError(
            "base.dataset.val_fraction is 0, but trials are scored on the validation split; "
            "use a value in (0, 1) (retrain.refit: true trains the winner on every image)"
        )
    _check_retrain_dataset(spec)
    allowed = _leaf_fields()
    for key, param in spec.space.items():
        if key not in allowed:
            raise ConfigError(
                f"space key '{clip(key)}' is not a trainer config key (e.g. optimizer.lr, model.dropout)"
            )
        if key == "epochs":
            raise ConfigError(
                "space key 'epochs' cannot be searched: it is scheduler.max_t for every trial"
            )
        for value in param.corners():
            try:
                build_config(deep_merge(base.to_dict(), trial_overrides({key: value})))
            except ConfigError as err:
                raise ConfigError(
                    f"space.{key} allows {clip(repr(value))}, which the trainer refuses: {err}"
                ) from err
    return spec


# What retrain.dataset may change: how many images train and validate. Not the data itself, its
# image size or its test split, or retrained and searched figures would measure different things.
RETRAIN_DATASET_KEYS = ("train_subset", "val_subset")


def _check_retrain_dataset(spec: SearchSpec) -> None:
    """retrain.dataset is refused here, before the search, rather than after it."""
    other = sorted(set(spec.retrain.dataset) - set(RETRAIN_DATASET_KEYS))
    if other:
        raise ConfigError(
            f"retrain.dataset key {clip(repr(other[0]))} is not allowed: retraining may change "
            f"only {' and '.join(RETRAIN_DATASET_KEYS)} (change base.dataset for the rest)"
        )
    try:
        spec.retrain_config({})
    except ConfigError as err:
        raise ConfigError(f"retrain.dataset: {err}") from err


def load_spec(path: str | Path) -> SearchSpec:
    return validate_spec(read_yaml(path), str(path))
