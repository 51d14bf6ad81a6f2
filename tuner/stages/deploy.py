"""The deployable model: the exported seed's checkpoint as ONNX (and TorchScript on request)
with its preprocessing inside, checked against PyTorch on the whole test split, timed, and
described in a model card. Runs at the end of every search (stage `deploy`) and on demand
(`python -m tuner export RESULTS --format onnx|torchscript`)."""

from __future__ import annotations

import json
import sys
import time
from importlib import metadata
from typing import Any

import numpy as np

from trainable.data.datasets import load_splits
from trainable.export import check
from trainable.export.card import write_card
from trainable.export.formats import write
from trainable.export.serving import serving_model
from trainable.files import checkpoint
from trainable.training.runtime import cpu_model
from tuner.results.layout import ResultsDir
from tuner.results.tables import BaseComparison


def deploy(results: ResultsDir, formats: tuple[str, ...] = ("onnx",)) -> dict[str, Any]:
    """Writes the models and the card; returns the card."""
    t0 = time.perf_counter()
    state = checkpoint.load(results.best_checkpoint)
    model, config = serving_model(state)
    written = {fmt: write(model, fmt, results.model(fmt)) for fmt in formats}
    if "onnx" not in written and results.model("onnx").is_file():
        written["onnx"] = results.model("onnx")  # an earlier export: checked and timed again
    test = load_splits(config.dataset).test
    say(f"exported {', '.join(formats)}; checking it against PyTorch on {len(test):,} test images")
    parity = check.parity(model, test.images, np.asarray(test.labels), written)
    latency = check.latency(model, written["onnx"]) if "onnx" in written else None
    card = _card(results, state, config.to_dict(), parity, latency)
    write_card(card, *results.model_card())
    agreement = ", ".join(f"{k} {parity[k]['top1_agreement']:.3%}" for k in written)
    say(
        f"model card written; top-1 agreement with PyTorch: {agreement} ({time.perf_counter() - t0:.0f} s)"
    )
    return card


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _card(
    results: ResultsDir,
    state: dict[str, Any],
    config: dict[str, Any],
    parity: dict[str, Any],
    latency: dict[str, Any] | None,
) -> dict[str, Any]:
    manifest = json.loads(results.manifest.read_text())
    summary = json.loads(results.test_summary.read_text())
    metrics = json.loads((results.test_metrics / "metrics.json").read_text())
    versus = manifest.get("versus_base")
    size = config["dataset"]["image_size"]
    tta = [v for v in ("hflip", "translate") if config.get(f"tta_{v}")]
    return {
        "name": manifest.get("search_space", {}).get("name") or results.path.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": f"{config['model']['name']} (width {config['model']['width']})",
        "classes": list(state["classes"]),
        "input": {
            "name": "images",
            "dtype": "uint8",
            "layout": "NHWC",
            "channels": 3,
            "color": "RGB (grayscale images: the same value in all three)",
            "image_size": size,
            "resize": f"resized to {size}x{size} inside the graph (bilinear); `predict` "
            "resizes with Pillow first, as training did",
            "preprocessing": "normalisation (the training split's mean and std) inside the graph",
        },
        "output": {"name": "probabilities", "dtype": "float32"},
        "test": {
            "tta": " + ".join(tta) if tta else "none",
            "accuracy": metrics["accuracy"],
            "balanced_accuracy": metrics.get("balanced_accuracy"),
            "macro_f1": metrics["macro_f1"],
            "accuracy_mean_over_seeds": summary["test_accuracy_mean"],
            "per_class": metrics["per_class"],
        },
        "parity": parity,
        "latency": latency,
        "machine": cpu_model(),
        "config": config,
        "data": manifest.get("data_provenance"),
        "search": {
            "results": results.where,
            "trials": manifest.get("trials"),
            "best_trial_id": manifest.get("best_trial_id"),
            "versus_base": BaseComparison(**versus).line() if versus else None,
        },
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("hpsearch", "torch", "onnx", "onnxruntime"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out
