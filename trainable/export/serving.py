"""The network with its input contract inside: raw uint8 RGB images in, class probabilities out.

    input  `images`: uint8, NHWC (batch, height, width, 3), RGB; any batch size and image size
    output `probabilities`: float32 (batch, classes), softmax over the classes in card order

Inside: NHWC -> NCHW, resize to the trained size (bilinear, no antialiasing: a no-op for
images already at that size; `predict` resizes with Pillow first, as the trainer's decoder
did), normalisation with the training split's mean and std, the network, softmax. One view:
test-time augmentation, if the recipe used it, is not in the graph (the card gives both
accuracies).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainable.config import TrainConfig, build_config
from trainable.model.network import build_network


class Serving(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module, mean: list[float], std: list[float], size: int) -> None:
        super().__init__()
        self.net, self.size = net, size
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        return torch.softmax(self.net(x).float(), dim=1)


def serving_model(state: dict[str, Any]) -> tuple[Serving, TrainConfig]:
    """The checkpoint's network in eval mode on the CPU, in float32, wrapped for serving."""
    config = build_config(state["config"])
    net = build_network(config.model, len(state["classes"]), config.dataset.input_size)
    net.load_state_dict(state["model"])
    model = Serving(net, state["norm"]["mean"], state["norm"]["std"], config.dataset.image_size)
    return model.eval(), config
