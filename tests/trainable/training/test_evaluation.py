"""Validation scores: accuracy and balanced accuracy from one pass, as the confusion matrix has them."""

from __future__ import annotations

import torch
from torch import nn

from trainable.config import TrainConfig
from trainable.training.evaluation import loss_acc, predict_confusion
from trainable.training.metrics import summarize
from trainable.training.runtime import resolve


class Lookup(nn.Module):
    """Logits that predict class `pred[i]` for image i (its first pixel holds i)."""

    def __init__(self, pred: torch.Tensor, classes: int) -> None:
        super().__init__()
        self.logits = nn.functional.one_hot(pred, classes).float() * 5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0, 0, 0].long()]


def test_balanced_accuracy_is_the_mean_per_class_accuracy() -> None:
    rt = resolve(TrainConfig(device="cpu", precision="fp32"))
    # 8 images of class 0 (all right), 2 of class 1 (one right): accuracy 0.9, balanced 0.75
    labels = torch.tensor([0] * 8 + [1] * 2)
    pred = torch.tensor([0] * 8 + [1, 0])
    images = torch.arange(10).float().reshape(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous()
    batches = [(images[:6], labels[:6]), (images[6:], labels[6:])]
    model = Lookup(pred, 2)
    scores = loss_acc(model, batches, rt, torch.contiguous_format)
    assert scores.acc == 0.9 and abs(scores.balanced_acc - 0.75) < 1e-9
    cm = predict_confusion(model, batches, rt, torch.contiguous_format, 2)
    assert summarize(cm, ["a", "b"])["balanced_accuracy"] == scores.balanced_acc
    assert scores.loss > 0
