"""`retrain.refit`: the winner retrained on train + validation, its final epoch exported."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from tests.tuner.conftest import tiny_spec
from trainable.errors import ConfigError
from trainable.files import checkpoint
from tuner.integrations.cluster import RayOptions
from tuner.results.layout import ResultsDir
from tuner.spec import validate_spec
from tuner.stages import experiment


@pytest.mark.slow
def test_refit_retrains_on_every_training_image_and_exports_the_first_seed(
    ray_session: None, tmp_path: Path
) -> None:
    raw = tiny_spec("refit", str(tmp_path), num_samples=2)
    # Trials search on a 200-image subset; the retraining takes every image (retrain.dataset).
    raw["base"] = {**raw["base"], "dataset": {**raw["base"]["dataset"], "train_subset": 200}}
    raw["scheduler"] = {"kind": "fifo", "metric": "val_loss", "mode": "min", "max_t": 2}
    raw["retrain"] = {"seeds": 2, "refit": True, "dataset": {"train_subset": None}}
    experiment.run(validate_spec(raw), raw, RayOptions())
    results = ResultsDir(tmp_path / "refit")
    # Trials run to their end (FIFO) but skip the per-class validation metrics: nothing reads them.
    attempts = list(results.path.glob("trial-*/attempt-*"))
    assert len(attempts) == 2 and all((a / "best").is_dir() for a in attempts)
    assert not any((a / "val_metrics").exists() for a in attempts)
    summary = json.loads(results.test_summary.read_text())
    assert summary["refit"] is True and summary["exported_seed"] == 0
    assert summary["exported_seed_val"] is None  # no validation score to choose by
    exported = yaml.safe_load(results.best_config().read_text())
    assert exported["dataset"]["val_fraction"] == 0.0  # production training uses every image
    for seed in (0, 1):
        run = results.retrain_run(seed)
        outcome = json.loads(ResultsDir.run_outcome(run).read_text())
        assert outcome["status"] == "completed" and math.isnan(outcome["best_val"])
        assert not (run / "val_metrics").exists()  # nothing was held out to score on
        # All 600 images (450 train + 150 validation) in full batches of 32, not the
        # search's 200 + 150: images per epoch = images/s x seconds, as the trainer reports them.
        history = checkpoint.load(run / "last" / checkpoint.FILENAME)["history"]
        assert round(history[0]["images_per_s"] * history[0]["train_s"]) == 600 // 32 * 32


def test_search_base_without_a_validation_split_is_refused(tmp_path: Path) -> None:
    raw = tiny_spec("noval", str(tmp_path))
    raw["base"] = {**raw["base"], "dataset": {**raw["base"]["dataset"], "val_fraction": 0.0}}
    with pytest.raises(ConfigError, match="trials are scored on the validation split"):
        validate_spec(raw)
