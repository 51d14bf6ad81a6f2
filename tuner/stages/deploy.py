"""The deployable model of a search: the exported seed's checkpoint as ONNX (and TorchScript
on request) with its preprocessing inside, checked, timed and described in a model card by
`trainable.export.bundle`, the card telling the search's story. Runs at the end of every
search (stage `deploy`) and on demand (`python -m tuner export RESULTS --format onnx|torchscript`)."""

from __future__ import annotations

import json
from typing import Any

from trainable.export.bundle import Bundle, Origin, export
from tuner.results.layout import ResultsDir
from tuner.results.tables import BaseComparison


def deploy(results: ResultsDir, formats: tuple[str, ...] = ("onnx",)) -> dict[str, Any]:
    """Writes the models and the card; returns the card."""
    manifest = json.loads(results.manifest.read_text())
    summary = json.loads(results.test_summary.read_text())
    versus = manifest.get("versus_base")
    comparison = BaseComparison(**versus).line() if versus else None
    search = {
        "results": results.where,
        "trials": manifest.get("trials"),
        "best_trial_id": manifest.get("best_trial_id"),
        "versus_base": comparison,
    }
    origin = Origin(
        name=manifest.get("search_space", {}).get("name") or results.path.name,
        source=results.where,
        produced_by=f"a search of {search['trials']} trials, best trial {search['best_trial_id']}; "
        + (comparison or "no base-config comparison recorded"),
        config_file="`best_config.yaml` beside this card",
        data=manifest.get("data_provenance"),
        search=search,
    )
    return export(
        results.best_checkpoint,
        formats,
        Bundle(results.model, results.model_card()),
        origin,
        results.test_metrics,
        {"accuracy_mean_over_seeds": summary["test_accuracy_mean"]},
    )
