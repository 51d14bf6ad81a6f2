"""The base of every config model (the trainer's and the search spec's, tuner/spec.py) and
the recipe's leaf sections, kept apart so that `config.py` stays one readable tree. Import
them from `trainable.config.tree`, which re-exports them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


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


class WhitenConfig(StrictModel):
    """The fixed whitening stem (`model.stem: whiten`, fastnet only), as in airbench94."""

    eps: float = Field(5e-4, gt=0.0, le=1.0)  # added to each patch eigenvalue before 1/sqrt
    images: int = Field(5000, ge=1)  # training images whose 2x2 patches give the covariance
    bias_epochs: int = Field(3, ge=0)  # epochs its bias trains before it is frozen


class SGDConfig(StrictModel):
    """Nesterov SGD in airbench94's decoupled form: each hyperparameter is tuned on its own.

    `lr_per_1024` is the step per 1,024 examples, independent of batch size and momentum;
    `weight_decay_per_1024` the decay per 1,024 examples, independent of the learning rate
    (see trainable/training/optim.py for the torch values they become)."""

    lr_per_1024: float = Field(11.5, gt=0.0, le=1000.0)
    momentum: float = Field(0.85, ge=0.0, lt=1.0)
    weight_decay_per_1024: float = Field(0.0153, ge=0.0, le=10.0)


class TriangularConfig(StrictModel):
    """Linear warm-up then linear decay, in multiples of the optimizer's learning rate."""

    start_factor: float = Field(0.2, ge=0.0, le=1.0)  # at the first step
    peak_fraction: float = Field(0.23, gt=0.0, lt=1.0)  # share of all steps spent warming up
    end_factor: float = Field(0.07, ge=0.0, le=1.0)  # at the last step


class LookaheadConfig(StrictModel):
    """An EMA of the weights copied back into the net every `every_steps` steps; the net takes
    the EMA at the end (airbench94, from hlb-cifar10). The EMA's decay at step s of S is
    `decay ** every_steps * (s / S) ** ramp_power`: no averaging early, more towards the end."""

    enabled: bool = False
    every_steps: int = Field(5, ge=1, le=10_000)
    decay: float = Field(0.95, gt=0.0, lt=1.0)  # per step
    ramp_power: float = Field(3.0, ge=0.0, le=10.0)
