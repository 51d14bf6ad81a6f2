"""Evaluation: validation loss/accuracy per epoch, confusion matrices, checkpoint evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from trainable.config import TrainConfig
from trainable.data.datasets import ArrayDataset
from trainable.data.loaders import make_dataloader, planned_loader
from trainable.model.network import build_network
from trainable.training.metrics import confusion_matrix, summarize, write_metrics
from trainable.training.runtime import Runtime, resolve


def eval_batches(
    config: TrainConfig, data: ArrayDataset, rt: Runtime, mean: list[float], std: list[float]
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    if config.loader.kind != "dataloader":
        return planned_loader(config, data, rt.device, mean, std, train=False)
    return make_dataloader(data, config.eval_batch_size, mean, std, config.loader, train=False)


class ValScores(NamedTuple):
    loss: float
    acc: float
    balanced_acc: float  # the mean of the per-class accuracies: what a balanced split would give


@dataclass(frozen=True)
class TTA:
    """Test-time augmentation: which views of each image are scored (logits averaged)."""

    hflip: bool = False  # the mirror image too
    translate: bool = False  # the image shifted one pixel up-left and down-right, too

    @classmethod
    def of(cls, config: TrainConfig) -> TTA:
        return cls(config.tta_hflip, config.tta_translate)


def tta_views(x: torch.Tensor, tta: TTA) -> list[tuple[float, torch.Tensor]]:
    """(weight, batch) per view, weights summing to 1. With `translate` (airbench's tta_level
    2), the unshifted views carry half the weight and the two shifted ones (reflect-padded by
    one pixel, so no black border) the other half; `hflip` adds each one's mirror."""

    def with_mirror(v: torch.Tensor) -> list[torch.Tensor]:
        return [v, v.flip(3)] if tta.hflip else [v]

    plain = with_mirror(x)
    if not tta.translate:
        return [(1 / len(plain), v) for v in plain]
    h, w = x.shape[2:]
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    # Output pixel (i, j) shows input pixel (i - 1, j - 1), then (i + 1, j + 1).
    shifted = with_mirror(padded[:, :, :h, :w]) + with_mirror(padded[:, :, 2:, 2:])
    return [(0.5 / len(plain), v) for v in plain] + [(0.5 / len(shifted), v) for v in shifted]


@torch.no_grad()
def logits_of(
    model: nn.Module, x: torch.Tensor, rt: Runtime, tta: TTA | bool = False
) -> torch.Tensor:
    """Logits in fp32, averaged over the `tta` views (a bool: mirror or not)."""
    tta = TTA(hflip=tta) if isinstance(tta, bool) else tta
    views = tta_views(x, tta)
    with rt.autocast():
        logits = views[0][0] * model(views[0][1]).float()
        for weight, view in views[1:]:
            logits += weight * model(view).float()
    return logits


@torch.no_grad()
def loss_acc(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    rt: Runtime,
    fmt: torch.memory_format,
    tta: TTA | bool = False,
) -> ValScores:
    """Validation loss is plain cross-entropy (no label smoothing), so it compares across configs.
    Balanced accuracy (the mean per-class recall) comes from the same pass, one host sync."""
    model.eval()
    loss_sum = torch.zeros((), device=rt.device)
    seen: torch.Tensor | None = None  # per class: images, then the correct ones
    n = 0
    for x, y in batches:
        x = x.to(rt.device, non_blocking=True, memory_format=fmt)
        y = y.to(rt.device, non_blocking=True)
        logits = logits_of(model, x, rt, tta)
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum")
        if seen is None:
            seen = torch.zeros(2, logits.shape[1], device=rt.device)
        hit = (logits.argmax(1) == y).float()
        # index_add_, not bincount: bincount sizes its output on the host (a sync per batch)
        seen.index_add_(1, y, torch.stack([torch.ones_like(hit), hit]))
        n += y.numel()
    if seen is None:
        return ValScores(float("nan"), float("nan"), float("nan"))
    # One read of the device: the loss, then each class's images and correct ones.
    loss_total, *counts = torch.cat([loss_sum.reshape(1), seen.flatten()]).tolist()
    classes = len(counts) // 2
    recalls = [c / i for i, c in zip(counts[:classes], counts[classes:], strict=True) if i > 0]
    balanced = sum(recalls) / len(recalls)
    return ValScores(loss_total / n, sum(counts[classes:]) / n, balanced)


@torch.no_grad()
def predict_confusion(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    rt: Runtime,
    fmt: torch.memory_format,
    num_classes: int,
    tta: TTA | bool = False,
) -> torch.Tensor:
    model.eval()
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=rt.device)
    for x, y in batches:
        x = x.to(rt.device, non_blocking=True, memory_format=fmt)
        y = y.to(rt.device, non_blocking=True)
        preds = logits_of(model, x, rt, tta).argmax(1)
        cm += confusion_matrix(y, preds, num_classes)
    return cm.cpu()


def evaluate(
    state: dict[str, Any],
    config: TrainConfig,
    data: ArrayDataset,
    out_dir: Path | None = None,
    title: str = "",
) -> dict[str, Any]:
    """Evaluate a loaded checkpoint on `data`; write metrics files to `out_dir` when given."""
    rt = resolve(config)
    classes = list(state["classes"])
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    net = build_network(config.model, len(classes), config.dataset.input_size)
    net.load_state_dict(state["model"])
    net = net.to(rt.device, memory_format=fmt)  # type: ignore[call-overload]
    batches = eval_batches(config, data, rt, state["norm"]["mean"], state["norm"]["std"])
    cm = predict_confusion(net, batches, rt, fmt, len(classes), TTA.of(config))
    summary = summarize(cm, classes)
    if out_dir is not None:
        write_metrics(summary, out_dir, title)
    return summary
