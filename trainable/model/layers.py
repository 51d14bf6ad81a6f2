"""airbench94's network details as reusable pieces: a fixed whitening stem, identity (dirac)
conv initialisation and BatchNorm settings. `network.build_network` applies them per config."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Patch values unfolded at a time by `patch_covariance` (64 MB as float32): the patches of
# 5,000 images at 128 px would be ~4 GB at once.
_PATCH_BLOCK_VALUES = 16 * 1024 * 1024


class Whitening(nn.Conv2d):
    """A 2x2 (by default), unpadded conv with 2 x C x k x k filters: the training patches'
    whitening filters and their negations (so a following GELU passes both signs). The
    filters are fixed (set by `init_from_covariance`); the bias trains, frozen later by the
    engine."""

    def __init__(self, in_channels: int = 3, kernel: int = 2) -> None:
        super().__init__(in_channels, 2 * in_channels * kernel**2, kernel, padding=0, bias=True)
        self.weight.requires_grad_(False)
        assert self.bias is not None  # bias=True above; for mypy
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In float32 even under autocast. The filters scale the patches' weakest directions by
        # up to 1/sqrt(eps) (~45) and cancel between channels: in bf16 (8-bit mantissa) the
        # rounding of inputs and weights broke the cancellation, and the digits folder's
        # default config (8-px grayscale, trained as 3 equal channels) diverged in its first
        # epoch on bf16 CPUs, every seed (session 18); in float32 it trains. The network's
        # cheapest conv; the next layer is back under autocast.
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())

    @torch.no_grad()
    def init_from_covariance(self, cov: torch.Tensor, eps: float) -> None:
        """From the patches' covariance (`patch_covariance`), computed once per split."""
        filters = filters_from_covariance(cov, self.in_channels, self.kernel_size[0], eps)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))


def patch_covariance(images: torch.Tensor, kernel: int) -> torch.Tensor:
    """The uncentred covariance (C x k x k square, channel-major: (c, i, j)) of every k x k
    patch of `images` (normalised NCHW), summed a block of images at a time."""
    n, c, h, w = images.shape
    positions = (h - kernel + 1) * (w - kernel + 1)
    block = max(1, _PATCH_BLOCK_VALUES // (c * kernel * kernel * positions))
    cov = torch.zeros(c * kernel * kernel, c * kernel * kernel, device=images.device)
    for start in range(0, n, block):
        u = F.unfold(images[start : start + block].float(), kernel)  # (n, C x k x k, positions)
        cov += torch.bmm(u, u.transpose(1, 2)).sum(0)
    return cov / (n * positions)


def filters_from_covariance(
    cov: torch.Tensor, channels: int, kernel: int, eps: float
) -> torch.Tensor:
    """Filters (C x k x k, C, k, k) whose responses to the patches have ~identity covariance:
    the covariance's eigenvectors, largest eigenvalue first, each scaled by 1/sqrt(eigenvalue
    + eps). The covariance is uncentred (the images are already normalised), as airbench's."""
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    scaled = eigenvectors.T / torch.sqrt(eigenvalues.clamp(min=0) + eps)[:, None]
    return scaled.reshape(channels * kernel * kernel, channels, kernel, kernel)


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
