"""Model registry. Adding a backbone is one function decorated with `@register("name")`.

Every builder takes `(num_classes, width, depth, dropout)` and returns an `nn.Module` mapping a
normalised NCHW float batch to logits; all end in global pooling (average, or max for
fastnet), so any input size works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

Builder = Callable[[int, int, int, float], nn.Module]
MODELS: dict[str, Builder] = {}


B = TypeVar("B", bound=Builder)


def register(name: str) -> Callable[[B], B]:
    def deco(fn: B) -> B:
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


class Scale(nn.Module):
    """Multiplies by a constant: airbench's logit scale, kept out of the weights."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


def conv_pool_bn(c_in: int, c_out: int, convs: int, pool: bool = True) -> nn.Sequential:
    """conv, max-pool, BN, GELU, then `convs - 1` x (conv, BN, GELU), all at c_out channels.

    Pooling right after the first conv (before BN) is airbench's order: the BN and the
    following convs run at a quarter of the pixels, and BN sees the pooled statistics.
    `pool=False` keeps the layer's place (an identity), so weights load by the same names.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.MaxPool2d(2) if pool else nn.Identity(),
        nn.BatchNorm2d(c_out),
        nn.GELU(),
    ]
    for _ in range(convs - 1):
        layers += [nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
        layers.append(nn.GELU())
    return nn.Sequential(*layers)


@register("fastnet")
def fastnet(
    num_classes: int,
    width: int,
    depth: int,
    dropout: float,
    *,
    stem: str = "conv",
    input_size: int = 32,
) -> nn.Module:
    """An airbench94-like net (Jordan, 2024), sized for GPU speed; width 64, depth 2 = its layout.

    A stem, then three (conv, pool, BN, GELU) blocks of `width`, `4*width`, `4*width`
    channels (64/256/256 at width 64, ~2.0M parameters, ~0.3 GFLOP per 32x32 image forward)
    with `depth` convs each, a global max-pool head and a bias-free linear classifier whose
    logits are scaled by 1/9: small logits at initialisation, as in airbench. The stem is a
    learned 3x3 conv to `width // 2` channels + BN + GELU (`stem="conv"`), or airbench's
    fixed 2x2 whitening conv to 24 channels + GELU (`stem="whiten"`, initialised from the
    data by `network.init_from_data`). A block pools only while its input has 2+ pixels a
    side (`input_size`, less one after the unpadded whitening conv): 32 px pools in all three
    (31, 15, 7 -> 3), 8 px in the first two (7, 3 -> 1), so any input of 8+ pixels works.
    """
    from trainable.model.layers import (
        Whitening,  # deferred: layers is the recipe's, not the registry's
    )

    head: list[nn.Module]
    if stem == "whiten":
        whiten = Whitening(3, 2)
        head, c_stem = [whiten, nn.GELU()], whiten.out_channels
    else:
        c_stem = max(width // 2, 1)
        head = [nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem), nn.GELU()]
    side, blocks = input_size - 1 if stem == "whiten" else input_size, []
    for c_in, c_out in ((c_stem, width), (width, 4 * width), (4 * width, 4 * width)):
        blocks.append(conv_pool_bn(c_in, c_out, depth, pool=side >= 2))
        side = side // 2 if side >= 2 else side
    return nn.Sequential(
        *head,
        *blocks,
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(4 * width, num_classes, bias=False),
        Scale(1 / 9),
    )
