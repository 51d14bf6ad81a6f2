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
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from trainable.errors import ConfigError
from trainable.vocab import METRIC_MODES, Mode


class StrictModel(BaseModel):
    """Base of every config tree here and of the search spec (tuner/spec.py)."""

    # frozen: a config is a value; extra="forbid": a typo is an error, not a silent default;
    # allow_inf_nan=False: `.inf` or `.nan` in YAML is a mistake, never a setting.
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=False, validate_default=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        # Lax mode would read `width: true` as 1; a boolean is only valid where one is asked.
        annotation = cls.model_fields[info.field_name or ""].annotation
        expected = getattr(annotation, "__name__", str(annotation)).replace("typing.", "")
        if isinstance(value, bool) and "bool" not in str(annotation):
            raise ValueError(f"expected {expected}, got a boolean")
        return value


def _only_with(model: BaseModel, field: str, key: str, applies: bool, needs: str) -> None:
    """A non-default `field` where it does not apply is a mistake (a search over it would
    search nothing): refuse it. Defaults pass, so a saved config reloads unchanged."""
    if applies:
        return
    default = type(model).model_fields[field].get_default(call_default_factory=True)
    value = getattr(model, field)
    if value != default:
        shown = "a non-default section" if isinstance(value, BaseModel) else repr(value)
        raise ValueError(f"{key}={shown} only applies with {needs}")


class DatasetConfig(StrictModel):
    name: Literal["cifar10", "imagefolder", "synthetic"] = "cifar10"
    root: str = "data"
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    # Fixed apart from `seed`, so every trial of a search is scored on the same validation images.
    split_seed: int = Field(0, ge=0)
    # Optional subset sizes for quick runs (drawn stratified, seeded); None = everything.
    train_subset: int | None = Field(None, ge=1)
    val_subset: int | None = Field(None, ge=1)
    test_subset: int | None = Field(None, ge=1)
    download: bool = True  # cifar10 only: let torchvision fetch the official files if missing
    image_size: int = Field(32, ge=8, le=512)  # imagefolder resize target; synthetic size
    # synthetic only: a generated, learnable task for tests
    num_classes: int = Field(10, ge=2, le=1000)
    synthetic_train_size: int = Field(2000, ge=10)
    synthetic_test_size: int = Field(500, ge=10)


class WhitenConfig(StrictModel):
    """The fixed whitening stem (`model.stem: whiten`, fastnet only), as in airbench94."""

    eps: float = Field(5e-4, gt=0.0, le=1.0)  # added to each patch eigenvalue before 1/sqrt
    images: int = Field(5000, ge=1)  # training images whose 2x2 patches give the covariance
    bias_epochs: int = Field(3, ge=0)  # epochs its bias trains before it is frozen


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
        from trainable.models import MODELS  # deferred: keeps `config` importable without torch

        if name not in MODELS:
            raise ValueError(f"unknown model; allowed: {', '.join(sorted(MODELS))}")
        return name

    @model_validator(mode="after")
    def _whiten_is_fastnets(self) -> ModelConfig:
        if self.stem == "whiten" and self.name != "fastnet":
            raise ValueError(f"model.stem=whiten needs model.name=fastnet, got {self.name!r}")
        _only_with(self, "whiten", "model.whiten", self.stem == "whiten", "model.stem=whiten")
        return self


class SGDConfig(StrictModel):
    """Nesterov SGD in airbench94's decoupled form: each hyperparameter is tuned on its own.

    `lr_per_1024` is the step per 1,024 examples, independent of batch size and momentum;
    `weight_decay_per_1024` the decay per 1,024 examples, independent of the learning rate
    (see trainable/optim.py for the torch values they become)."""

    lr_per_1024: float = Field(11.5, gt=0.0, le=1000.0)
    momentum: float = Field(0.85, ge=0.0, lt=1.0)
    weight_decay_per_1024: float = Field(0.0153, ge=0.0, le=10.0)


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


class TriangularConfig(StrictModel):
    """Linear warm-up then linear decay, in multiples of the optimizer's learning rate."""

    start_factor: float = Field(0.2, ge=0.0, le=1.0)  # at the first step
    peak_fraction: float = Field(0.23, gt=0.0, lt=1.0)  # share of all steps spent warming up
    end_factor: float = Field(0.07, ge=0.0, le=1.0)  # at the last step


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


class LookaheadConfig(StrictModel):
    """An EMA of the weights copied back into the net every `every_steps` steps; the net takes
    the EMA at the end (airbench94, from hlb-cifar10). The EMA's decay at step s of S is
    `decay ** every_steps * (s / S) ** ramp_power`: no averaging early, more towards the end."""

    enabled: bool = False
    every_steps: int = Field(5, ge=1, le=10_000)
    decay: float = Field(0.95, gt=0.0, lt=1.0)  # per step
    ramp_power: float = Field(3.0, ge=0.0, le=10.0)


class EarlyStoppingConfig(StrictModel):
    patience: int | None = Field(None, ge=1)  # epochs without improvement; None = off
    min_delta: float = Field(0.0, ge=0.0)
    monitor: Literal["val_acc", "val_loss"] = "val_acc"

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
    # device: uint8 data resident on the training device, augmentation as batched tensor ops.
    # dataloader: classic torch DataLoader with per-sample transforms in worker processes.
    kind: Literal["device", "dataloader"] = "device"
    num_workers: int = Field(2, ge=0, le=64)
    pin_memory: bool = True
    prefetch_factor: int = Field(2, ge=1, le=64)
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


def clip(text: str, limit: int = 80) -> str:
    """`text` made safe for a one-line message: control characters escaped, at most `limit`."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def one_line_error(err: ValidationError, model: type[BaseModel] = TrainConfig) -> str:
    """First validation problem as `key: got VALUE; WHAT IS ALLOWED` (one line, bounded length)."""
    first = err.errors(include_url=False)[0]
    key = clip(".".join(str(p) for p in first["loc"]) or "<config>", 120)
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        parent = _submodel(model, [str(p) for p in first["loc"][:-1]])
        allowed = ", ".join(parent.model_fields) if parent else "see the documentation"
        return f"unknown config key '{key}'; allowed keys here: {allowed}"
    if first["type"] == "missing":
        return f"config key '{key}' is required but missing"
    msg = clip(first["msg"].removeprefix("Value error, "), 300)
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


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """`["optimizer.lr=0.003", "augment.hflip=false"]` -> nested dict; values parsed as YAML."""
    tree: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. optimizer.lr=0.003), got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {pair!r}: '{part}' is a value, not a section")
        node[parts[-1]] = value
    return tree


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


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


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: plain YAML keeps the last
    one silently, so a pasted block could override a setting without anyone noticing."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # unhashable keys are refused by the base class itself
            if key in seen:
                raise _DuplicateKey(
                    None, None, f"duplicate key {clip(repr(key), 40)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass an existing YAML file)")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except _DuplicateKey as err:
        line = f" at line {err.problem_mark.line + 1}" if err.problem_mark is not None else ""
        raise ConfigError(f"{path}: {err.problem}{line}; give each key once") from err
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path} is not valid YAML{line}; fix the syntax") from err
    except RecursionError as err:
        raise ConfigError(f"{path} nests too deeply to be a config; flatten it") from err
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        raise ConfigError(f"{path} has a value YAML cannot load: {clip(str(err))}") from err


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> TrainConfig:
    return build_config(read_yaml(path) if path is not None else None, overrides)
