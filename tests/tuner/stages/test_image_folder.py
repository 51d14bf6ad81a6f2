"""A search on an image folder: the splits stay in the decode cache and reach the trials and the
retraining as row numbers, which map the same cache."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.trainable.data.test_data import make_tree
from tests.tuner.conftest import tiny_spec
from trainable.config import DatasetConfig
from trainable.data.datasets import load_splits
from trainable.data.mapped import MappedImages
from tuner.integrations.cluster import RayOptions, share_data
from tuner.results.layout import ResultsDir
from tuner.spec import validate_spec
from tuner.stages import experiment


@pytest.mark.slow
def test_a_search_on_an_image_folder_runs_on_the_mapped_cache(
    ray_session: None, tmp_path: Path
) -> None:
    import ray

    tree = tmp_path / "tree"
    make_tree(tree, ["a", "b", "c"], per_class=40, size=(20, 20))
    dataset = {"name": "imagefolder", "root": str(tree), "image_size": 16, "val_fraction": 0.25}
    splits = load_splits(DatasetConfig(**dataset))  # type: ignore[arg-type]
    assert isinstance(splits.train.images, MappedImages)
    # What the trials receive: row numbers, far smaller than the 90 images' 69 KB.
    assert len(ray.cloudpickle.dumps(splits)) < 10_000
    assert isinstance(ray.get(share_data(splits)).val.images, MappedImages)

    raw = tiny_spec("folder", str(tmp_path / "results"), num_samples=2)
    raw["base"]["dataset"], raw["base"]["batch_size"] = dataset, 16
    raw["scheduler"] = {"kind": "fifo", "metric": "val_loss", "mode": "min", "max_t": 2}
    raw["retrain"] = {"seeds": 1, "refit": True}
    experiment.run(validate_spec(raw), raw, RayOptions())
    results = ResultsDir(tmp_path / "results" / "folder")
    trials = pd.read_parquet(results.trials)
    assert trials["trial_id"].nunique() == 2 and trials["val_loss"].notna().all()
    summary = json.loads(results.test_summary.read_text())
    assert summary["refit"] is True and 0.0 <= summary["test_accuracy_mean"] <= 1.0
