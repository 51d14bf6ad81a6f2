"""What `manifest.json` records, as typed models: one per stage, and the run's outcome.

`tuner.stages.experiment` writes them through `Manifest.mark_done` and `Manifest.finish`;
everything that reads a manifest (the CLI, `show`/`list`, the report, the model card, the
benchmarks) reads them back through `Manifest.record` and `Manifest.outcome`, so a field is
named once. Unknown fields are errors when written and ignored when read (a manifest written
by an older or newer version still opens); an older manifest's `best_<metric>` is read as
`best_value`.

May import pydantic and `tuner.results.comparison` only (no Ray: `show` and `list` read these).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from tuner.results.comparison import BaseComparison, Retrained


class SearchStatus(StrEnum):
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # stopped from outside (signal, full disk): resumable
    FAILED = "failed"  # no trial produced a result, or no retraining run did
    FINISHED = "finished"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _as_read(cls, data: Any, info: ValidationInfo) -> Any:
        """On reading (context `read`): an older manifest's `best_<metric>` becomes
        `best_value`, and fields this version does not know are dropped."""
        if not isinstance(data, dict) or not (info.context or {}).get("read"):
            return data
        if "best_value" in cls.model_fields and "best_value" not in data:
            old = [k for k in data if k.startswith("best_") and k not in _NOT_SCORES]
            if len(old) == 1:
                data = data | {"metric": old[0].removeprefix("best_"), "best_value": data[old[0]]}
        return {k: v for k, v in data.items() if k in cls.model_fields}


_NOT_SCORES = {"best_trial_id", "best_params", "best_value"}


class Record(_Model):
    """A stage's record: written once its outputs are complete (`done_at`, set on writing)."""

    done_at: str = ""


class SearchDone(Record):
    wall_s: float  # Ray Tune's fit(), in this process (a resumed search: its last part)
    ended_by_patience: bool = False  # searcher.patience ended it before its budget


class _Best(_Model):
    """The search's best trial and its score, as the tables ranked it."""

    trials: int
    trial_status_counts: dict[str, int]
    epochs_spent: int
    best_trial_id: str | None  # None: no trial reported a score (a budgeted run trains the base)
    metric: str
    best_value: float | None
    retrained: Retrained = Retrained.WINNER  # written before this key existed: the winner
    versus_base: BaseComparison | None = None


class TablesDone(Record, _Best):
    summary: str  # the search's one-line summary
    search_best_params: dict[str, Any]  # the winner's values
    best_params: dict[str, Any]  # the values retrained: the winner's, or the base config's


class RetrainPlan(Record):
    epochs: int = Field(ge=1)
    epoch_s: float | None = None  # one epoch of the final training, measured by its probe
    derived_epoch_s: float | None = None  # the same from the trials' speed, for comparison
    trial_images_per_s: float | None = None
    # When the final training should end (time.time()): it re-plans its epochs to this as it
    # goes (trainable.training.horizon). An uninterrupted run's; a resumed run ignores it.
    ends_at: float | None = None
    max_epochs: int | None = None  # the budget's cap on the re-planned epochs

class SeedDone(Record):
    status: str
    out_dir: str


class ExportDone(Record):
    test_accuracy_mean: float
    test_accuracy_std: float
    exported_seed: int
    failed_seeds: list[int]
    lr_retried_seeds: dict[str, float] = {}
    test_balanced_accuracy_mean: float | None = None
    test_macro_f1_mean: float | None = None


class DeployDone(Record):
    model: str
    top1_agreement: float


class RegisterDone(Record):
    model: str
    version: str


STAGES: dict[str, type[Record]] = {
    "search": SearchDone,
    "tables": TablesDone,
    "plan_retrain": RetrainPlan,
    "export": ExportDone,
    "deploy": DeployDone,
    "register": RegisterDone,
}


def stage_type(stage: str) -> type[Record]:
    return SeedDone if stage.startswith("retrain/seed-") else STAGES[stage]


class Outcome(_Best):
    """A finished run, at the manifest's top level: what the CLI prints and `show` lists."""

    status: SearchStatus
    summary: str
    search_wall_s: float | None = None
    retrain_wall_s: float | None = None  # summed over the processes that retrained
    test_accuracy_mean: float
    test_accuracy_std: float
    test_balanced_accuracy_mean: float | None = None
    test_macro_f1_mean: float | None = None
    lr_retried_seeds: dict[str, float] = {}


def read_outcome(manifest: dict[str, Any]) -> Outcome | None:
    """A manifest's outcome: None before the run finished."""
    if manifest.get("status") != SearchStatus.FINISHED:
        return None
    return Outcome.model_validate(manifest, context={"read": True})
