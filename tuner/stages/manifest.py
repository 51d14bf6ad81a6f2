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
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

from trainable.files import atomic
from trainable.training.runtime import cpu_model


class SearchStatus(StrEnum):
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # stopped from outside (signal, full disk): resumable
    FAILED = "failed"  # no trial produced a result, or no retraining run did
    FINISHED = "finished"


class Manifest:
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

    def stage(self, stage: str) -> dict[str, Any]:
        return dict(self.stages().get(stage) or {})

    def mark_done(self, stage: str, **outputs: Any) -> None:
        stages = self.stages() | {stage: {"done_at": _now(), **outputs}}
        self.update(stages=stages)


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
