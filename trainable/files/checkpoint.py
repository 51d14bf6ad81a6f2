"""Checkpoints: plain dicts of tensors and primitives, written atomically, read with
`torch.load(weights_only=True)` so a checkpoint file can never execute code when loaded."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainable.errors import DataError
from trainable.files.run_dir import FILENAME

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "config", "classes", "norm", "epoch")
# Production training, a search's trials and its retraining seeds write their resume point at
# most this often (and at their end): a killed run loses at most this much training, and a run
# of sub-second epochs no longer spends a fifth of its time writing checkpoints.
DEFAULT_INTERVAL_S = 30.0


@dataclass(frozen=True)
class SavePolicy:
    """When a run writes its resume point (`last/`, with `best/` if it improved since).

    Every epoch by default. A search saves less often, because at short epochs the write (and
    Tune's copy of it into storage) weighs against little training: at `epochs` (its
    scheduler's rungs), at the run's last epoch, and once `interval_s` has passed since the
    last write. A run killed in between resumes from the last write, so it loses at most
    `interval_s` of training plus the epoch in progress."""

    interval_s: float = 0.0
    epochs: frozenset[int] = frozenset()

    def due(self, epoch: int, final: bool, since_s: float) -> bool:
        return final or epoch in self.epochs or since_s >= self.interval_s


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format_version": FORMAT_VERSION, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file (or a folder holding `checkpoint.pt`); one-line error if unusable."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path} (pass a checkpoint.pt file or its folder)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, pickle refusing code, ...: all mean "unusable file"
        raise DataError(
            f"checkpoint {path} is corrupt or not a trainer checkpoint ({type(err).__name__})"
        ) from err
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise DataError(
            f"checkpoint {path} lacks {', '.join(missing)}; it was not written by this trainer"
        )
    if state["format_version"] != FORMAT_VERSION:
        raise DataError(
            f"checkpoint {path} has format {state['format_version']}, this trainer reads {FORMAT_VERSION}"
        )
    return state
