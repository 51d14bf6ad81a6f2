"""`manifest.json`: a search's provenance, the stages it has completed, its status and outcome.

Every update rewrites the file atomically, so a kill or a full disk leaves the previous version.
A stage is recorded (`stages.<name>`, with the time and what it produced) only once its outputs
are complete on disk; `resume` skips recorded stages and redoes the first one not recorded.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from trainable.files import atomic
from trainable.training.runtime import cpu_model
from tuner.results.records import Outcome, Record, SearchStatus, read_outcome, stage_type

__all__ = ["Manifest", "SearchStatus", "provenance"]

R = TypeVar("R", bound=Record)


class Manifest:
    """The manifest file; its stages and outcome are the typed records of
    `tuner.results.records`, its provenance a plain mapping (`provenance`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):  # absent or damaged: Tune's state and the files decide
            return {}
        return data if isinstance(data, dict) else {}

    def update(self, **fields: Any) -> None:
        data = self.read() | fields
        atomic.write_text(self.path, json.dumps(data, indent=2, default=str))

    @property
    def status(self) -> str | None:
        value = self.read().get("status")
        return None if value is None else str(value)

    def stages(self) -> dict[str, Any]:
        stages = self.read().get("stages")
        return stages if isinstance(stages, dict) else {}

    def done(self, stage: str) -> bool:
        return stage in self.stages()

    def record(self, stage: str, kind: type[R]) -> R:
        """A done stage's record (KeyError if it is not done)."""
        return kind.model_validate(self.stages()[stage], context={"read": True})

    def mark_done(self, stage: str, record: Record) -> None:
        if not isinstance(record, stage_type(stage)):
            raise TypeError(f"stage {stage!r} records a {stage_type(stage).__name__}")
        stamped = record.model_copy(update={"done_at": _now()})
        self.update(stages=self.stages() | {stage: stamped.model_dump(mode="json")})

    def finish(self, outcome: Outcome) -> None:
        self.update(**outcome.model_dump(mode="json"))

    def outcome(self) -> Outcome | None:
        """The finished run's outcome; None before it finished."""
        return read_outcome(self.read())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def provenance(
    spec_raw: dict[str, Any], data_provenance: str, results_dir: str | Path
) -> dict[str, Any]:
    """What the manifest says before the first trial: command, versions, hardware, data."""
    import ray

    from tuner.integrations.cluster import alive_nodes

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "absent"

    repo = Path(__file__).resolve().parents[2]
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started_at": _now(),
        "search_space": spec_raw,
        "results_dir": str(results_dir),
        "packages": {
            p: version(p)
            for p in (
                "hpsearch",
                "torch",
                "torchvision",
                "ray",
                "optuna",
                "pandas",
                "pyarrow",
                "numpy",
            )
        },
        "git_commit": commit.stdout.strip() or None,
        "hardware": {
            "driver_host": platform.node(),
            "driver_cpu": cpu_model(),
            "cluster_resources": {
                k: v for k, v in ray.cluster_resources().items() if not k.startswith("node:")
            },
            "nodes": len(alive_nodes()),
        },
        "data_provenance": data_provenance,
        "status": SearchStatus.RUNNING,
        "stages": {},
    }
