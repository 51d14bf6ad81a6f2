"""A trainer run's folder, its file names owned by one object (as `tuner.results.layout`
owns a search's):

    config.yaml             the resolved config the run trains with (written before epoch 1)
    last/checkpoint.pt      the latest epoch's state: `--resume` continues from it
    best/checkpoint.pt      the best epoch by `early_stopping.monitor` (the last, without val)
    val_metrics/            the best checkpoint on the validation split, per class
    test_metrics/           the best checkpoint on the test split (`train --test`)
    result.json             the run's summary, written when it ends
    model.onnx              the deployable model (`python -m trainable export RUN`);
                            model.torchscript.pt on request
    model_card.md, .json    what it is, its input contract, test metrics, parity, latency

A search's retraining runs (`best/runs/seed-<k>/`) are trainer run folders too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FILENAME = "checkpoint.pt"  # no torch here: `predict` and the CLIs' parsers import this
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "last" / FILENAME

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "best" / FILENAME

    def checkpoint_folders(self) -> tuple[Path, Path]:
        """(last/, best/): what a retry from scratch removes."""
        return self.path / "last", self.path / "best"

    @property
    def test_metrics(self) -> Path:
        return self.path / "test_metrics"

    @property
    def val_metrics(self) -> Path:
        return self.path / "val_metrics"

    @property
    def result(self) -> Path:
        return self.path / "result.json"

    def model(self, fmt: str) -> Path:
        """The exported model: `onnx` or `torchscript`."""
        return self.path / MODEL_FILES[fmt]

    def model_card(self) -> tuple[Path, Path]:
        """(model_card.md, model_card.json)"""
        return self.path / "model_card.md", self.path / "model_card.json"
