"""airbench94's network details as reusable pieces: a fixed whitening stem, identity (dirac)
conv initialisation and BatchNorm settings. `network.build_network` applies them per config."""

from __future__ import annotations

import torch
from torch import nn


class Whitening(nn.Conv2d):
    """A 2x2 (by default), unpadded conv with 2 x C x k x k filters: the training patches'
    whitening filters and their negations (so a following GELU passes both signs). The
    filters are fixed (set by `init_from`); the bias trains, frozen later by the engine."""

    def __init__(self, in_channels: int = 3, kernel: int = 2) -> None:
        super().__init__(in_channels, 2 * in_channels * kernel**2, kernel, padding=0, bias=True)
        self.weight.requires_grad_(False)
        assert self.bias is not None  # bias=True above; for mypy
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def init_from(self, images: torch.Tensor, eps: float) -> None:
        """`images`: normalised NCHW training images on this layer's device."""
        filters = whitening_filters(images, self.kernel_size[0], eps)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight.dtype))


def patches(images: torch.Tensor, kernel: int) -> torch.Tensor:
    """Every k x k patch of every image, flattened: (N x H' x W', C x k x k), channel-major."""
    c = images.shape[1]
    p = images.float().unfold(2, kernel, 1).unfold(3, kernel, 1)  # N, C, H', W', k, k
    return p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kernel * kernel)


def whitening_filters(images: torch.Tensor, kernel: int, eps: float) -> torch.Tensor:
    """Filters (C x k x k, C, k, k) whose responses to the patches have ~identity covariance:
    the covariance's eigenvectors, largest eigenvalue first, each scaled by 1/sqrt(eigenvalue
    + eps). The covariance is uncentred (the images are already normalised), as airbench's."""
    flat = patches(images, kernel)
    cov = flat.T @ flat / len(flat)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    scaled = eigenvectors.T / torch.sqrt(eigenvalues.clamp(min=0) + eps)[:, None]
    c = images.shape[1]
    return scaled.reshape(c * kernel * kernel, c, kernel, kernel)


@torch.no_grad()
def dirac_init(net: nn.Module) -> None:
    """Each (ungrouped) conv's first in_channels filters become the identity, so at
    initialisation every conv passes its input through in part. The whitening stem is left
    alone: its filters come from the data."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and not isinstance(m, Whitening) and m.groups == 1:
            nn.init.dirac_(m.weight[: m.in_channels])


def set_batchnorm(net: nn.Module, momentum: float, eps: float, weight_frozen: bool) -> None:
    """Every BatchNorm layer's running-average momentum (torch's convention: the new batch's
    weight), eps, and whether its scale trains (frozen scales stay at their initial 1)."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum, m.eps = momentum, eps
            if m.weight is not None:
                m.weight.requires_grad_(not weight_frozen)


def whitening_layer(net: nn.Module) -> Whitening | None:
    return next((m for m in net.modules() if isinstance(m, Whitening)), None)
