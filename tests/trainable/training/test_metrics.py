from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trainable.training.metrics import confusion_matrix, summarize, write_metrics

CLASSES = ["cat", "dog", "owl"]
# true:  cat cat cat dog dog owl owl owl owl
# pred:  cat cat dog dog cat owl owl owl cat
LABELS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
PREDS = torch.tensor([0, 0, 1, 1, 0, 2, 2, 2, 0])


def test_confusion_matrix_counts_true_rows_predicted_columns() -> None:
    cm = confusion_matrix(LABELS, PREDS, 3)
    assert cm.tolist() == [[2, 1, 0], [1, 1, 0], [1, 0, 3]]
    assert int(cm.sum()) == len(LABELS)
    assert cm.sum(dim=1).tolist() == [3, 2, 4]


def test_per_class_metrics_match_hand_computation() -> None:
    s = summarize(confusion_matrix(LABELS, PREDS, 3), CLASSES)
    assert s["accuracy"] == pytest.approx(6 / 9)
    cat, dog, owl = (s["per_class"][c] for c in CLASSES)
    # cat: tp 2, predicted 4 (2 + dog's 1 + owl's 1), support 3
    assert cat["precision"] == pytest.approx(2 / 4)
    assert cat["recall"] == cat["accuracy"] == pytest.approx(2 / 3)
    assert cat["f1"] == pytest.approx(2 * (0.5 * 2 / 3) / (0.5 + 2 / 3))
    assert dog["precision"] == pytest.approx(1 / 2) and dog["recall"] == pytest.approx(1 / 2)
    assert owl["precision"] == pytest.approx(1.0) and owl["recall"] == pytest.approx(3 / 4)
    assert owl["support"] == 4
    assert s["macro_recall"] == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)


def test_never_predicted_class_has_zero_precision_not_nan() -> None:
    s = summarize(torch.tensor([[3, 0], [2, 0]]), ["a", "b"])
    assert s["per_class"]["b"] == {
        "accuracy": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 2,
    }


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match 2 classes"):
        summarize(torch.zeros(3, 3, dtype=torch.long), ["a", "b"])


def test_written_files_use_class_names(tmp_path: Path) -> None:
    paths = write_metrics(summarize(confusion_matrix(LABELS, PREDS, 3), CLASSES), tmp_path, "t")
    data = json.loads(paths["json"].read_text())
    assert list(data["per_class"]) == CLASSES
    assert data["confusion_matrix"]["classes"] == CLASSES
    per_class = pd.read_csv(paths["per_class_csv"], index_col="class")
    assert list(per_class.index) == CLASSES
    assert per_class.loc["owl", "recall"] == pytest.approx(0.75)
    cm = pd.read_csv(paths["confusion_csv"], index_col="true")
    assert list(cm.index) == CLASSES and list(cm.columns) == CLASSES
    assert int(cm.loc["owl", "cat"]) == 1
    assert paths["confusion_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present() -> None:
    # 90 of class a all right, 10 of class b all wrong; class c absent from the split.
    cm = np.array([[90, 0, 0], [10, 0, 0], [0, 0, 0]])
    s = summarize(cm, ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(0.9)
    assert s["balanced_accuracy"] == pytest.approx(0.5)  # (1.0 + 0.0) / 2
    assert s["macro_f1"] == pytest.approx((2 * 0.9 / 1.9) / 3)
