"""Model registry. Adding a backbone is one function decorated with `@register("name")`.

Every builder takes `(num_classes, width, depth, dropout)` and returns an `nn.Module` mapping a
normalised NCHW float batch to logits; all end in global average pooling, so any input size works.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Builder = Callable[[int, int, int, float], nn.Module]
MODELS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        MODELS[name] = fn
        return fn

    return deco


def build_model(name: str, num_classes: int, width: int, depth: int, dropout: float) -> nn.Module:
    return MODELS[name](num_classes, width, depth, dropout)


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Head(nn.Sequential):
    """Global average pooling, dropout, linear classifier."""

    def __init__(self, c_in: int, num_classes: int, dropout: float) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)
        )


@register("smallnet")
def smallnet(num_classes: int, width: int, depth: int, dropout: float) -> nn.Module:
    """Compact Conv-BN-ReLU CNN: a stem, then `depth` stages of (conv, max-pool, conv).

    Stage channels double from `2*width` up to `8*width`; pooling sits between the two convs of a
    stage (as in fast CIFAR nets) so the wider conv runs at the lower resolution.
    """
    layers: list[nn.Module] = [conv_bn(3, width)]
    c_in = width
    for stage in range(depth):
        c_out = width * 2 ** min(stage + 1, 3)
        layers += [conv_bn(c_in, c_out), nn.MaxPool2d(2), conv_bn(c_out, c_out)]
        c_in = c_out
    return nn.Sequential(*layers, Head(c_in, num_classes, dropout))


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register("resnet9")
def resnet9(num_classes: int, width: int, depth: int, dropout: float) -> nn.Module:
    """The DAWNBench ResNet-9 (Page, 2018), channels scaled by `width` (64 = original).

    `depth` is ignored beyond the fixed layout: prep, (conv, pool, residual), (conv, pool),
    (conv, pool, residual).
    """
    w = width
    return nn.Sequential(
        conv_bn(3, w),
        conv_bn(w, 2 * w),
        nn.MaxPool2d(2),
        Residual(2 * w),
        conv_bn(2 * w, 4 * w),
        nn.MaxPool2d(2),
        conv_bn(4 * w, 8 * w),
        nn.MaxPool2d(2),
        Residual(8 * w),
        Head(8 * w, num_classes, dropout),
    )


@register("resnet18")
def resnet18(num_classes: int, width: int, depth: int, dropout: float) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool)."""
    import torchvision

    net = torchvision.models.resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(512, num_classes))
    return net
