"""Configuration: the trainer's frozen, typed config tree (`tree`), the base model and leaf
sections it is built from (`base`), and reading YAML and `--set` overrides (`reading`).
`trainable.config` is the public import path of all of them. The bottom of `trainable` with
`errors` and `vocab`: imports the model registry's names only (to validate `model.name`) and
reads configs from an object store through `trainable.files.storage`, lazily."""

from trainable.config.base import (
    LookaheadConfig,
    SGDConfig,
    StrictModel,
    TriangularConfig,
    WhitenConfig,
)
from trainable.config.reading import clip, deep_merge, parse_overrides, read_yaml
from trainable.config.tree import (
    AugmentConfig,
    DatasetConfig,
    EarlyStoppingConfig,
    LoaderConfig,
    ModelConfig,
    OptimizerConfig,
    ScheduleConfig,
    TrainConfig,
    build_config,
    load_config,
    one_line_error,
)

__all__ = [
    "AugmentConfig",
    "DatasetConfig",
    "EarlyStoppingConfig",
    "LoaderConfig",
    "LookaheadConfig",
    "ModelConfig",
    "OptimizerConfig",
    "SGDConfig",
    "ScheduleConfig",
    "StrictModel",
    "TrainConfig",
    "TriangularConfig",
    "WhitenConfig",
    "build_config",
    "clip",
    "deep_merge",
    "load_config",
    "one_line_error",
    "parse_overrides",
    "read_yaml",
]
