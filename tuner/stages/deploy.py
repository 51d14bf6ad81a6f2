"""The deployable model of a search: the exported seed's checkpoint as ONNX (and TorchScript
on request) with its preprocessing inside, checked, timed and described in a model card by
`trainable.export.bundle`, the card telling the search's story. Runs at the end of every
search (stage `deploy`) and on demand (`python -m tuner export RESULTS --format onnx|torchscript`)."""

from __future__ import annotations

import json
from typing import Any

from trainable.export.bundle import Bundle, Origin, export
from tuner.results.layout import ResultsDir
from tuner.results.records import TablesDone
from tuner.stages.manifest import Manifest


def deploy(results: ResultsDir, formats: tuple[str, ...] = ("onnx",)) -> dict[str, Any]:
    """Writes the models and the card; returns the card. Runs after the tables and export
    stages, before the run's outcome exists: the search's facts come from their records."""
    manifest = Manifest(results.manifest)
    tables = manifest.record("tables", TablesDone)
    summary = json.loads(results.test_summary.read_text())
    comparison = tables.versus_base.line() if tables.versus_base else None
    search = {
        "results": results.where,
        "trials": tables.trials,
        "best_trial_id": tables.best_trial_id,
        "retrained": str(tables.retrained),
        "versus_base": comparison,
    }
    origin = Origin(
        name=manifest.read().get("search_space", {}).get("name") or results.path.name,
        source=results.where,
        produced_by=_produced_by(tables, comparison),
        config_file="`best_config.yaml` beside this card",
        data=manifest.read().get("data_provenance"),
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


def _produced_by(tables: TablesDone, comparison: str | None) -> str:
    if tables.best_trial_id is None:  # a budgeted run whose trials all ended without a score
        return (
            f"a search of {tables.trials} trials, none of which reported a score in its time: "
            "the base config, trained for the time the budget left"
        )
    return f"a search of {tables.trials} trials, best trial {tables.best_trial_id}; " + (
        comparison or "no base-config comparison recorded"
    )
