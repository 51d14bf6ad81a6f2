"""The trainer's configuration: one frozen, typed tree, validated once at the edge.

Built from YAML plus `--set key.path=value` overrides; unknown keys, wrong types and impossible
values raise `ConfigError` with a single line naming the key, the value and what is allowed.
The validated config is saved next to every result (`config.yaml`) and inside checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from trainable.config.base import (
    LookaheadConfig,
    SGDConfig,
    StrictModel,
    TriangularConfig,
    WhitenConfig,
    _only_with,
)
from trainable.config.reading import clip, deep_merge, parse_overrides, read_yaml
from trainable.errors import ConfigError
from trainable.vocab import METRIC_MODES, Mode


class DatasetConfig(StrictModel):
    name: Literal["cifar10", "imagefolder", "synthetic"] = "cifar10"
    root: str = "data"
    # 0: no validation split, every training image trains (a production run or a refit once
    # the search is done); then `best/` is the final epoch and early stopping must be off.
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    # Fixed apart from `seed`, so every trial of a search is scored on the same validation images.
    split_seed: int = Field(0, ge=0)
    # Optional subset sizes for quick runs (drawn stratified, seeded); None = everything.
    train_subset: int | None = Field(None, ge=1)
    val_subset: int | None = Field(None, ge=1)
    test_subset: int | None = Field(None, ge=1)
    # cifar10 only: let torchvision fetch the official files if missing. Off by default: a
    # machine without the files should say so, not reach for the internet.
    download: bool = False
    image_size: int = Field(32, ge=8, le=512)  # imagefolder resize target; synthetic size
    # synthetic only: a generated, learnable task for tests
    num_classes: int = Field(10, ge=2, le=1000)
    synthetic_train_size: int = Field(2000, ge=10)
    synthetic_test_size: int = Field(500, ge=10)

    @property
    def input_size(self) -> int:
        """The side of the images the network sees: CIFAR-10's own 32 px, else image_size."""
        return 32 if self.name == "cifar10" else self.image_size


class ModelConfig(StrictModel):
    name: str = "smallnet"
    width: int = Field(32, ge=1, le=1024)
    depth: int = Field(3, ge=1, le=6)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    # conv: fastnet's learned 3x3 stem; whiten: a fixed 2x2 conv whose filters whiten the
    # training images' patches (airbench94); fastnet only.
    stem: Literal["conv", "whiten"] = "conv"
    whiten: WhitenConfig = WhitenConfig()
    # default: torch's initialisation; dirac: each conv's first in_channels filters start as
    # the identity (airbench94), so a fresh deep net starts close to a shallow one.
    conv_init: Literal["default", "dirac"] = "default"
    # Every BatchNorm layer: torch's running-average momentum (airbench's 0.6 is 0.4 here:
    # torch weighs the new batch by `momentum`), eps, and whether its scale is trained.
    bn_momentum: float = Field(0.1, gt=0.0, le=1.0)
    bn_eps: float = Field(1e-5, gt=0.0, le=1.0)
    bn_weight_frozen: bool = False  # True: scales stay 1, only BN biases train (airbench)

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from trainable.model.registry import (
            MODELS,  # deferred: keeps `config` importable without torch
        )

        if name not in MODELS:
            raise ValueError(f"unknown model; allowed: {', '.join(sorted(MODELS))}")
        return name

    @model_validator(mode="after")
    def _whiten_is_fastnets(self) -> ModelConfig:
        if self.stem == "whiten" and self.name != "fastnet":
            raise ValueError(f"model.stem=whiten needs model.name=fastnet, got {self.name!r}")
        _only_with(self, "whiten", "model.whiten", self.stem == "whiten", "model.stem=whiten")
        return self


class OptimizerConfig(StrictModel):
    """`name` picks the optimizer: adamw (`lr`, `weight_decay`, `betas`; `lr` is the
    schedule's peak) or sgd (Nesterov, the `sgd` section)."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(5e-4, ge=0.0, le=1.0)
    betas: tuple[float, float] = (0.9, 0.999)
    sgd: SGDConfig = SGDConfig()
    # Learning-rate multiple for BatchNorm biases (airbench: 64); their weight decay per step
    # stays that of the other weights.
    bn_bias_lr_scale: float = Field(1.0, gt=0.0, le=1000.0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError("each beta must be in [0, 1)")
        return betas

    @model_validator(mode="after")
    def _no_setting_for_the_other_optimizer(self) -> OptimizerConfig:
        adamw = self.name == "adamw"
        for key in ("lr", "weight_decay", "betas"):
            _only_with(self, key, f"optimizer.{key}", adamw, "optimizer.name=adamw")
        _only_with(self, "sgd", "optimizer.sgd", not adamw, "optimizer.name=sgd")
        return self


class ScheduleConfig(StrictModel):
    """Stepped once per batch. onecycle: torch's OneCycleLR (the keys below); triangular:
    airbench94's warm-up / linear decay (the `triangular` section)."""

    name: Literal["onecycle", "triangular"] = "onecycle"
    pct_start: float = Field(0.25, gt=0.0, lt=1.0)
    div_factor: float = Field(25.0, ge=1.0)
    final_div_factor: float = Field(1e3, ge=1.0)
    anneal_strategy: Literal["cos", "linear"] = "cos"
    triangular: TriangularConfig = TriangularConfig()

    @model_validator(mode="after")
    def _no_setting_for_the_other_schedule(self) -> ScheduleConfig:
        onecycle = self.name == "onecycle"
        for key in ("pct_start", "div_factor", "final_div_factor", "anneal_strategy"):
            _only_with(self, key, f"schedule.{key}", onecycle, "schedule.name=onecycle")
        _only_with(
            self, "triangular", "schedule.triangular", not onecycle, "schedule.name=triangular"
        )
        return self


class EarlyStoppingConfig(StrictModel):
    patience: int | None = Field(None, ge=1)  # epochs without improvement; None = off
    min_delta: float = Field(0.0, ge=0.0)
    monitor: Literal["val_acc", "val_loss", "val_balanced_acc"] = "val_acc"

    @property
    def mode(self) -> Mode:
        return METRIC_MODES[self.monitor]


class AugmentConfig(StrictModel):
    crop_padding: int = Field(4, ge=0, le=64)  # padding before a random crop; 0 = no crop
    # zeros: pad with black; reflect: mirror the border (airbench's "translate"); reflect
    # needs crop_padding smaller than the image.
    pad_mode: Literal["zeros", "reflect"] = "zeros"
    hflip: bool = True
    # random: each image flipped with p=0.5 each epoch; alternating: epoch 1 flips a seeded
    # random half, every later epoch flips exactly the images the previous one did not
    # (airbench94; device loader only).
    hflip_mode: Literal["random", "alternating"] = "random"


class LoaderConfig(StrictModel):
    # device: uint8 data resident on the training device, augmentation as batched tensor ops
    # (a split that does not fit is streamed instead, with a notice).
    # stream: the same batches, read from host memory or the decode cache a batch at a time.
    # dataloader: classic torch DataLoader with per-sample transforms in worker processes.
    kind: Literal["device", "stream", "dataloader"] = "device"
    num_workers: int = Field(2, ge=0, le=64)
    pin_memory: bool = True
    prefetch_factor: int = Field(2, ge=1, le=64)  # batches read ahead (per worker)
    persistent_workers: bool = True


class TrainConfig(StrictModel):
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    augment: AugmentConfig = AugmentConfig()
    loader: LoaderConfig = LoaderConfig()
    batch_size: int = Field(256, ge=1, le=65536)
    eval_batch_size: int = Field(1024, ge=1, le=65536)
    epochs: int = Field(15, ge=1, le=10000)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    # Evaluate on each image and its mirror, averaging logits (validation and test alike).
    tta_hflip: bool = False
    # Also on the image translated by one pixel up-left and down-right (reflect-padded), each
    # with its mirror when tta_hflip: airbench's tta_level 2 (3x or 6x evaluation cost).
    tta_translate: bool = False
    lookahead: LookaheadConfig = LookaheadConfig()
    # auto: bf16 where the hardware has it (Ampere+ GPUs, AVX512-BF16/AMX CPUs); fp16 with a
    # GradScaler on older GPUs; fp32 on other CPUs, where bf16 is emulated and slow.
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    tf32: bool = True  # CUDA only; ignored on CPU
    cudnn_benchmark: bool = True  # CUDA only; off when deterministic
    channels_last: bool = True
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(0, ge=0, le=2**31 - 1)
    deterministic: bool = False
    # Parameters (params_m), MACs an image (macs_m) and batch-1 latency (latency_ms) measured
    # after the first epoch and reported with every epoch (trainable.model.cost); a search's
    # `constraints` turn it on.
    measure_cost: bool = False

    @model_validator(mode="after")
    def _early_stopping_needs_a_validation_split(self) -> TrainConfig:
        if self.dataset.val_fraction == 0 and self.early_stopping.patience is not None:
            raise ValueError(
                "early_stopping.patience needs a validation split; got dataset.val_fraction=0 "
                f"with patience={self.early_stopping.patience}: set patience to null or "
                "val_fraction > 0"
            )
        return self

    @model_validator(mode="after")
    def _alternating_flip_needs_the_device_loader(self) -> TrainConfig:
        if self.augment.hflip_mode == "alternating" and self.loader.kind != "device":
            raise ValueError(
                "augment.hflip_mode=alternating needs loader.kind=device (the DataLoader "
                "path draws flips per sample); got loader.kind=dataloader"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def one_line_error(err: ValidationError, model: type[BaseModel] = TrainConfig) -> str:
    """First validation problem as `key: got VALUE; WHAT IS ALLOWED` (one line, bounded length)."""
    first = err.errors(include_url=False)[0]
    key = clip(".".join(str(p) for p in first["loc"]), 120)
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        parent = _submodel(model, [str(p) for p in first["loc"][:-1]])
        allowed = ", ".join(parent.model_fields) if parent else "see the documentation"
        return f"unknown config key '{key}'; allowed keys here: {allowed}"
    if first["type"] == "missing":
        return f"config key '{key}' is required but missing"
    msg = clip(first["msg"].removeprefix("Value error, "), 300)
    if not first["loc"]:  # a rule across keys: its message names them
        return msg
    shown = clip(repr(value)) if not isinstance(value, Mapping) else "a mapping"
    return f"config key '{key}': got {shown}; {msg}"


def _submodel(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    for part in path:
        field = model.model_fields.get(part)
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def build_config(
    raw: Mapping[str, Any] | None = None, overrides: Iterable[str] = ()
) -> TrainConfig:
    """Validate a raw mapping (from YAML) plus `--set` overrides into a `TrainConfig`."""
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"config must be a mapping of keys to values, got {type(raw).__name__}")
    merged = deep_merge(raw or {}, parse_overrides(overrides))
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(one_line_error(err)) from err


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> TrainConfig:
    return build_config(read_yaml(path) if path is not None else None, overrides)
