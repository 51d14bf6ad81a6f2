"""Classification metrics from a confusion matrix, written with class names (JSON, CSV, PNG).

Rows of the confusion matrix are true classes, columns predicted classes. Per-class accuracy is
the fraction of a class's images classified correctly, which for single-label classification is
the same number as that class's recall; both are reported under their usual names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainable.files import atomic


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    flat = labels.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # A class never predicted (or absent) gets 0, not NaN: JSON and CSV stay plain numbers.
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def summarize(cm: np.ndarray | torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """Overall accuracy, macro averages and per-class accuracy/precision/recall/F1/support."""
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.int64)
    if cm.shape != (len(classes), len(classes)):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {len(classes)} classes")
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    recall = _safe_div(tp, support)
    precision = _safe_div(tp, predicted)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    per_class = {
        name: {
            "accuracy": float(recall[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    total = int(cm.sum())
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        # The mean of the per-class recalls over the classes present: what accuracy would
        # be on a balanced test split (an imbalanced one hides a neglected class).
        "balanced_accuracy": float(recall[support > 0].mean()) if total else 0.0,
        "num_images": total,
        "per_class": per_class,
        "confusion_matrix": {"classes": list(classes), "rows_true_cols_pred": cm.tolist()},
    }


def write_metrics(summary: dict[str, Any], out_dir: Path, title: str = "") -> dict[str, Path]:
    """`metrics.json`, `per_class.csv`, `confusion_matrix.csv` and `confusion_matrix.png`."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    classes = summary["confusion_matrix"]["classes"]
    cm = np.asarray(summary["confusion_matrix"]["rows_true_cols_pred"])
    paths = {
        "json": out_dir / "metrics.json",
        "per_class_csv": out_dir / "per_class.csv",
        "confusion_csv": out_dir / "confusion_matrix.csv",
        "confusion_png": out_dir / "confusion_matrix.png",
    }
    # Each file atomically (a kill or a full disk leaves the previous file, never half of one).
    atomic.write_text(paths["json"], json.dumps(summary, indent=2))
    per_class = pd.DataFrame.from_dict(summary["per_class"], orient="index")
    per_class.index.name = "class"
    with atomic.atomic_path(paths["per_class_csv"]) as tmp:
        per_class.to_csv(tmp)
    frame = pd.DataFrame(cm, index=pd.Index(classes, name="true"), columns=classes)
    with atomic.atomic_path(paths["confusion_csv"]) as tmp:
        frame.to_csv(tmp)
    with atomic.atomic_path(paths["confusion_png"]) as tmp:
        plot_confusion(cm, classes, tmp, title or f"accuracy {summary['accuracy']:.2%}")
    return paths


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    n = len(classes)
    size = max(4.0, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        row_norm = _safe_div(cm.astype(np.float64), cm.sum(axis=1, keepdims=True))
        ax.imshow(row_norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(n), classes, rotation=45, ha="right")
        ax.set_yticks(range(n), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    color = "white" if row_norm[i, j] > 0.5 else "black"
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
        fig.tight_layout()
        fig.savefig(path, dpi=110, format="png")  # format given: the path may be a temp name
    finally:
        plt.close(fig)
