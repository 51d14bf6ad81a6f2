"""Training-time augmentation as batched tensor ops, and the seeded draws behind it.

Pad by `crop_padding` (zeros, or a mirror of the border with `pad_mode: reflect`), take a
random crop of the original size (offsets uniform in [0, 2*padding]), flip horizontally (p=0.5
per image per epoch, or with `hflip_mode: alternating` a seeded half in epoch 1 and exactly the
other images in the next epoch, alternating). Every draw comes from a generator seeded by
(seed, epoch), so an epoch is reproducible and a resumed run sees the batches an uninterrupted
one would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainable.config import AugmentConfig
from trainable.errors import ConfigError


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(epoch_seed(seed, epoch))


@dataclass(frozen=True)
class AugmentDraws:
    """One epoch's random augmentation choices, one entry per sample in epoch order."""

    offsets_y: torch.Tensor  # crop offsets in [0, 2 * padding]
    offsets_x: torch.Tensor
    flip: torch.Tensor  # bool

    def __getitem__(self, window: slice) -> AugmentDraws:
        return AugmentDraws(self.offsets_y[window], self.offsets_x[window], self.flip[window])


def draw_augment(
    n: int, augment: AugmentConfig, generator: torch.Generator, flip: torch.Tensor | None = None
) -> AugmentDraws:
    """Crop offsets, and random flips unless `flip` (per sample, epoch order) is given."""
    span = 2 * augment.crop_padding + 1
    offsets_y = torch.randint(0, span, (n,), generator=generator)
    offsets_x = torch.randint(0, span, (n,), generator=generator)
    if flip is None:
        flip = (
            torch.rand(n, generator=generator) < 0.5
            if augment.hflip
            else torch.zeros(n, dtype=torch.bool)
        )
    return AugmentDraws(offsets_y, offsets_x, flip)


def alternating_flips(n: int, seed: int, epoch: int) -> torch.Tensor:
    """Which images (dataset order) an epoch flips: in epoch 1 a random half, drawn from the
    seed alone (epoch 0's generator: no training epoch uses it), then alternately the other
    half and that half again, so each image is flipped in exactly one of any two consecutive
    epochs. More varied than independent coin flips, which repeat a view half the time."""
    first = torch.zeros(n, dtype=torch.bool)
    first[torch.randperm(n, generator=epoch_generator(seed, 0))[: n // 2]] = True
    return first if epoch % 2 == 1 else ~first


def check_augment(augment: AugmentConfig, image_size: int) -> None:
    """Reflection mirrors the image once: the padding must be smaller than the image."""
    if augment.pad_mode == "reflect" and augment.crop_padding >= image_size:
        raise ConfigError(
            f"augment.crop_padding={augment.crop_padding} with augment.pad_mode=reflect needs "
            f"a padding below the image size ({image_size}); lower crop_padding"
        )


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Indices in [-size + 1, 2 * size - 2] mirrored into [0, size - 1] (border not repeated)."""
    return (size - 1) - ((size - 1) - index.abs()).abs()


def crop_flip(
    x: torch.Tensor, padding: int, draws: AugmentDraws, reflect: bool = False
) -> torch.Tensor:
    """Random padded crop + horizontal flip of a uint8 NCHW batch, as a single gather.

    Zero padding pads and then indexes; reflection maps each output pixel to its mirrored
    source pixel directly. `draws` must be on `x`'s device: nothing here reads or copies from
    the host.
    """
    b, c, h, w = x.shape
    dev = x.device
    if padding and not reflect:
        x = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    cols = torch.arange(w, device=dev)
    cols = torch.where(draws.flip[:, None], w - 1 - cols, cols) + draws.offsets_x[:, None]  # (B, W)
    rows = torch.arange(h, device=dev) + draws.offsets_y[:, None]  # (B, H)
    if reflect:  # offsets count from the padded image's corner
        rows, cols = _reflect(rows - padding, h), _reflect(cols - padding, w)
    batch_idx = torch.arange(b, device=dev)[:, None, None, None]
    chan_idx = torch.arange(c, device=dev)[None, :, None, None]
    return x[batch_idx, chan_idx, rows[:, None, :, None], cols[:, None, None, :]]
