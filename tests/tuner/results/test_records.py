"""The manifest's typed records: written once through `Manifest`, read back typed; an older
manifest (its score as `best_<metric>`, fields this version lacks) still opens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tuner.results.comparison import BaseComparison, Retrained
from tuner.results.records import (
    ExportDone,
    Outcome,
    SearchDone,
    SearchStatus,
    SeedDone,
    TablesDone,
    read_outcome,
    stage_type,
)
from tuner.stages.manifest import Manifest

VERSUS = BaseComparison("val_acc", "a", 3, 0.70, "b", 0.75, 0.05, 0.01)
TABLES = TablesDone(
    summary="3 trials",
    trials=3,
    trial_status_counts={"completed": 2, "pruned": 1},
    epochs_spent=7,
    best_trial_id="b",
    metric="val_acc",
    best_value=0.75,
    retrained=Retrained.WINNER,
    versus_base=VERSUS,
    search_best_params={"optimizer.lr": 0.01},
    best_params={"optimizer.lr": 0.01},
)


def test_a_stage_is_written_stamped_and_read_back_typed(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.json")
    manifest.mark_done("tables", TABLES)
    manifest.mark_done("retrain/seed-0", SeedDone(status="completed", out_dir="runs/seed-0"))
    back = manifest.record("tables", TablesDone)
    assert back.done_at and back.model_copy(update={"done_at": ""}) == TABLES
    assert back.versus_base == VERSUS and back.retrained is Retrained.WINNER
    assert manifest.record("retrain/seed-0", SeedDone).status == "completed"
    assert stage_type("retrain/seed-7") is SeedDone
    with pytest.raises(TypeError, match="stage 'search' records a SearchDone"):
        manifest.mark_done("search", TABLES)
    with pytest.raises(KeyError):
        manifest.record("search", SearchDone)


def test_unknown_fields_are_errors_when_written_and_ignored_when_read(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="surprise"):
        SearchDone(wall_s=1.0, surprise=True)  # type: ignore[call-arg]
    path = tmp_path / "manifest.json"
    # An older manifest: the score as best_val_acc, no `metric`, no `retrained`, an extra key.
    old = TABLES.model_dump(mode="json", exclude={"metric", "best_value", "retrained"})
    path.write_text(json.dumps({"stages": {"tables": old | {"best_val_acc": 0.75, "x": 1}}}))
    back = Manifest(path).record("tables", TablesDone)
    assert (back.metric, back.best_value, back.retrained) == ("val_acc", 0.75, Retrained.WINNER)


def test_the_outcome_exists_only_once_finished(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.json")
    manifest.update(status=SearchStatus.RUNNING, data_provenance="somewhere")
    assert manifest.outcome() is None
    export = ExportDone(
        test_accuracy_mean=0.8, test_accuracy_std=0.0, exported_seed=0, failed_seeds=[]
    )
    outcome = Outcome(
        status=SearchStatus.FINISHED,
        search_wall_s=12.0,
        retrain_wall_s=30.0,
        **TABLES.model_dump(include=set(Outcome.model_fields)),
        **export.model_dump(include=set(Outcome.model_fields)),
    )
    manifest.finish(outcome)
    assert manifest.outcome() == outcome
    data = manifest.read()
    # the outcome sits beside the provenance, which it leaves alone
    assert data["data_provenance"] == "somewhere" and data["best_value"] == 0.75
    assert read_outcome(data | {"status": "interrupted"}) is None


def test_a_finished_manifest_without_an_outcome_lists_as_dashes(tmp_path: Path) -> None:
    from tuner.results.catalog import Experiment, overview
    from tuner.spec import validate_spec

    spec = validate_spec(
        {
            "name": "old",
            "space": {"optimizer.lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
        }
    )
    exp = Experiment(tmp_path, spec, {"status": "finished", "started_at": "2026-01-01T00:00:00"})
    assert exp.outcome is None
    facts = overview(exp)
    assert facts["status"] == "finished" and facts["trials"] == "-"
