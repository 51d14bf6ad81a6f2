"""A checkpoint to a shippable bundle: the serving model in each format asked for, checked
against PyTorch on the whole test split, timed, and described in a model card beside it.

Used by `python -m trainable export RUN` (a trainer run folder) and by a search's `deploy`
stage (`tuner.stages.deploy`, which adds the search's story to the card through `Origin`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from trainable.data.datasets import load_splits
from trainable.errors import ConfigError, DataError
from trainable.export import check
from trainable.export.card import write_card
from trainable.export.formats import FORMATS, write
from trainable.export.serving import serving_model
from trainable.files import checkpoint
from trainable.files.run_dir import RunDir
from trainable.training.runtime import cpu_model


@dataclass(frozen=True)
class Origin:
    """What the card says about where the model came from."""

    name: str
    source: str  # the folder or URI it was exported from
    produced_by: str  # one line: the trainer run, or the search and its base comparison
    config_file: str  # where its trainer config lies, relative to the card
    data: str | None = None  # the data's provenance, when recorded
    search: dict[str, Any] = field(default_factory=dict)  # a search's own facts


@dataclass(frozen=True)
class Bundle:
    """Where one export writes: the model file per format, and the card's two files."""

    model: Callable[[str], Path]
    card: tuple[Path, Path]  # (model_card.md, model_card.json)


def export(
    checkpoint_file: Path,
    formats: tuple[str, ...],
    bundle: Bundle,
    origin: Origin,
    test_metrics: Path | None,
    extra_test: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes the models and the card; returns the card. `test_metrics` is the folder of the
    run's own test evaluation (as trained, TTA included), when it had one."""
    t0 = time.perf_counter()
    state = checkpoint.load(checkpoint_file)
    model, config = serving_model(state)
    written = {fmt: write(model, fmt, bundle.model(fmt)) for fmt in formats}
    if "onnx" not in written and bundle.model("onnx").is_file():
        written["onnx"] = bundle.model("onnx")  # an earlier export: checked and timed again
    test = load_splits(config.dataset).test
    say(f"exported {', '.join(formats)}; checking it against PyTorch on {len(test):,} test images")
    parity = check.parity(model, test.images, np.asarray(test.labels), written)
    latency = check.latency(model, written["onnx"]) if "onnx" in written else None
    card = {
        "name": origin.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": f"{config.model.name} (width {config.model.width})",
        "classes": list(state["classes"]),
        "input": _input_contract(config.dataset.image_size),
        "output": {"name": "probabilities", "dtype": "float32"},
        "test": _test(config.to_dict(), test_metrics, extra_test),
        "parity": parity,
        "latency": latency,
        "machine": cpu_model(),
        "config": config.to_dict(),
        "data": origin.data,
        "origin": {k: v for k, v in asdict(origin).items() if k not in ("name", "data", "search")},
        "versions": _versions(),
    }
    if origin.search:
        card["search"] = origin.search
    write_card(card, *bundle.card)
    agreement = ", ".join(f"{k} {parity[k]['top1_agreement']:.3%}" for k in written)
    say(
        f"model card written; top-1 agreement with PyTorch: {agreement} ({time.perf_counter() - t0:.0f} s)"
    )
    return card


def export_run(run: RunDir, formats: tuple[str, ...]) -> dict[str, Any]:
    """A trainer run folder's best checkpoint, exported into the folder, or a one-line
    DataError naming what is missing."""
    if not run.path.is_dir():
        raise DataError(f"{run.path} is not a folder; pass the --out folder of a training run")
    if not run.best_checkpoint.is_file():
        raise DataError(
            f"{run.path} holds no {run.best_checkpoint.relative_to(run.path)}: not a training run "
            "folder, or its first epoch has not finished; pass the --out folder of a training run"
        )
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ConfigError(
            f"unknown format {sorted(unknown)[0]!r}; choose from {', '.join(FORMATS)}"
        )
    result = json.loads(run.result.read_text()) if run.result.is_file() else {}
    trained = (
        f"python -m trainable train: {result['status']} after {result['epochs_run']} epochs "
        f"({result['reason']}); best {result['monitor']} at epoch {result['best_epoch']}"
        if {"status", "epochs_run", "reason", "monitor", "best_epoch"} <= set(result)
        else "python -m trainable train (the run has not written result.json: still running?)"
    )
    origin = Origin(
        name=run.path.resolve().name,
        source=str(run.path),
        produced_by=trained,
        config_file=f"`{run.config.name}` beside this card",
    )
    metrics = run.test_metrics if (run.test_metrics / "metrics.json").is_file() else None
    return export(
        run.best_checkpoint, formats, Bundle(run.model, run.model_card()), origin, metrics
    )


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _input_contract(size: int) -> dict[str, Any]:
    return {
        "name": "images",
        "dtype": "uint8",
        "layout": "NHWC",
        "channels": 3,
        "color": "RGB (grayscale images: the same value in all three)",
        "image_size": size,
        "resize": f"resized to {size}x{size} inside the graph (bilinear); `predict` "
        "resizes with Pillow first, as training did",
        "preprocessing": "normalisation (the training split's mean and std) inside the graph",
    }


def _test(
    config: dict[str, Any], folder: Path | None, extra: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The run's own test evaluation (None without one: the card then gives the exported
    model's single-view accuracy from the parity check only)."""
    if folder is None:
        return None
    metrics = json.loads((folder / "metrics.json").read_text())
    tta = [v for v in ("hflip", "translate") if config.get(f"tta_{v}")]
    return {
        "tta": " + ".join(tta) if tta else "none",
        "accuracy": metrics["accuracy"],
        "balanced_accuracy": metrics.get("balanced_accuracy"),
        "macro_f1": metrics["macro_f1"],
        "per_class": metrics["per_class"],
        **(extra or {}),
    }


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("hpsearch", "torch", "onnx", "onnxruntime"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out
