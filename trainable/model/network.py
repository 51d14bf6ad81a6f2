"""The network a config describes: built the same way for training and for evaluation."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import torch
from torch import nn

from trainable.config import ModelConfig
from trainable.data.mapped import MappedImages
from trainable.data.memo import memoised
from trainable.model.layers import dirac_init, patch_covariance, set_batchnorm, whitening_layer
from trainable.model.registry import build_model, fastnet


def build_network(cfg: ModelConfig, num_classes: int, input_size: int = 32) -> nn.Module:
    """The registered backbone with the config's stem, initialisation and BatchNorm settings,
    for images of `input_size` pixels a side (`DatasetConfig.input_size`). A whitening stem
    starts as zeros here: `init_from_data` sets it for training, and a checkpoint's weights
    are loaded over it for evaluation."""
    if cfg.name == "fastnet":  # sized to the input: small images pool fewer times
        net = fastnet(
            num_classes, cfg.width, cfg.depth, cfg.dropout, stem=cfg.stem, input_size=input_size
        )
    else:
        net = build_model(cfg.name, num_classes, cfg.width, cfg.depth, cfg.dropout)
    if cfg.conv_init == "dirac":
        dirac_init(net)
    set_batchnorm(net, cfg.bn_momentum, cfg.bn_eps, cfg.bn_weight_frozen)
    return net


def init_from_data(
    net: nn.Module,
    cfg: ModelConfig,
    images: np.ndarray | MappedImages,
    mean: list[float],
    std: list[float],
    images_key: Hashable | None = None,
) -> None:
    """Initialisation that needs the training images (uint8 NHWC): the whitening stem, from
    the patches of the first `whiten.images` of them, normalised as the loaders do. With
    `images_key` (`memo.images_key(images)`), their covariance is computed once per process."""
    layer = whitening_layer(net)
    if layer is None:
        return
    device = layer.weight.device
    kernel = layer.kernel_size[0]

    def covariance() -> torch.Tensor:
        # Copied only when read-only (a view of Ray's object store, which torch warns about):
        # rows of a mapped cache arrive as a fresh array already.
        x = torch.from_numpy(np.require(images[: cfg.whiten.images], requirements=["C", "W"]))
        x = x.to(device).permute(0, 3, 1, 2).float() / 255
        m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        s = torch.tensor(std, device=device).view(1, -1, 1, 1)
        return patch_covariance((x - m) / s, kernel).cpu()

    if images_key is None:
        cov = covariance()
    else:
        key = ("patch_covariance", images_key, cfg.whiten.images, kernel, *mean, *std, str(device))
        cov = memoised(key, covariance)
    layer.init_from_covariance(cov.to(device), cfg.whiten.eps)


def set_whiten_bias_trainable(net: nn.Module, cfg: ModelConfig, epoch: int) -> None:
    """The whitening stem's bias trains in the first `whiten.bias_epochs` epochs only."""
    layer = whitening_layer(net)
    if layer is not None and layer.bias is not None:
        layer.bias.requires_grad_(epoch <= cfg.whiten.bias_epochs)
