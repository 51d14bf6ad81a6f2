"""Two batch pipelines with the same augmentation semantics.

Augmentation (train only): pad by `crop_padding` (zeros, or a mirror of the border with
`pad_mode: reflect`), take a random crop of the original size (offsets uniform in
[0, 2*padding]), flip horizontally (p=0.5 per image per epoch, or with `hflip_mode:
alternating` a seeded half in epoch 1 and exactly the other images in the next epoch,
alternating; device loader only), then normalise per channel.

- `DeviceLoader`: the uint8 dataset lives on the training device; a whole batch is cropped and
  flipped by one gather and normalised in one fused op. No per-sample Python work, no workers.
- `make_dataloader`: the classic `torch.utils.data.DataLoader` with torchvision transforms per
  sample in worker processes, pinned memory, persistent workers and prefetching.

Both shuffle with a generator seeded from (seed, epoch), so an epoch's order is reproducible
and a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainable.config import AugmentConfig, LoaderConfig, TrainConfig
from trainable.data import ArrayDataset
from trainable.datasize import require_device
from trainable.errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units, computed on the training split."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return x.mean(axis=0).tolist(), x.std(axis=0).tolist()


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(epoch_seed(seed, epoch))


def train_steps(n_images: int, batch_size: int) -> int:
    """Training batches per epoch, in both loaders: the ragged last batch is dropped
    (BatchNorm dislikes tiny batches) unless it is the only one."""
    return max(1, n_images // batch_size)


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


class DeviceLoader:
    """Batches from a device-resident uint8 tensor; yields normalised float NCHW + labels.

    An epoch's shuffle order and augmentation draws come from a CPU generator seeded by
    (seed, epoch), so CPU and GPU runs see the same batches, and reach the device in one
    copy at the start of the epoch: the batch loop itself never touches host memory.
    """

    def __init__(
        self,
        data: ArrayDataset,
        batch_size: int,
        device: torch.device,
        mean: list[float],
        std: list[float],
        *,
        train: bool,
        augment: AugmentConfig | None = None,
        channels_last: bool = False,
        seed: int = 0,
    ) -> None:
        if device.type == "cuda":  # refused in one line, not an out-of-memory error mid-upload
            require_device(data.images.nbytes, torch.cuda.mem_get_info(device)[0], str(device))
        # Kept as NHWC: on the CPU this shares the (possibly read-only, object-store) array
        # without a copy, and a permuted NHWC batch is already a channels_last NCHW tensor.
        self.images = _shared_tensor(data.images).to(device)
        self.labels = _shared_tensor(data.labels).to(device)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.augment = augment or AugmentConfig(crop_padding=0, hflip=False)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.labels)
        return train_steps(n, self.batch_size) if self.train else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n, device = len(self.labels), self.images.device
        if self.train:
            gen = epoch_generator(self.seed, self.epoch)
            order = torch.randperm(n, generator=gen)
            flip = None
            if self.augment.hflip and self.augment.hflip_mode == "alternating":
                flip = alternating_flips(n, self.seed, self.epoch)[order]
            d = draw_augment(n, self.augment, gen, flip)
            # One host-to-device copy per epoch for the order and every augmentation draw.
            plan = torch.stack([order, d.offsets_y, d.offsets_x, d.flip.long()]).to(device)
            order = plan[0]
            draws = AugmentDraws(plan[1], plan[2], plan[3].bool())
        else:
            order = torch.arange(n, device=device)
        for i in range(len(self)):
            window = slice(i * self.batch_size, (i + 1) * self.batch_size)
            idx = order[window]
            x = self.images[idx].permute(0, 3, 1, 2)  # uint8 NCHW view
            if self.train:
                reflect = self.augment.pad_mode == "reflect"
                x = crop_flip(x, self.augment.crop_padding, draws[window], reflect)
            x = ((x.float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)
            yield x, self.labels[idx]


def _shared_tensor(array: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():
        # Read-only arrays (memory-mapped, or from Ray's object store) are never written here.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


class _ArrayImages(Dataset[Batch]):
    def __init__(self, data: ArrayDataset, transform: torch.nn.Module) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Batch:
        img = torch.from_numpy(self.data.images[i].copy()).permute(2, 0, 1)
        return self.transform(img), torch.tensor(int(self.data.labels[i]))


def sample_transform(
    mean: list[float], std: list[float], augment: AugmentConfig | None, image_size: int
) -> torch.nn.Module:
    from torchvision.transforms import v2

    steps: list[torch.nn.Module] = []
    if augment is not None and augment.crop_padding:
        mode = "reflect" if augment.pad_mode == "reflect" else "constant"
        steps.append(
            v2.RandomCrop(image_size, padding=augment.crop_padding, fill=0, padding_mode=mode)
        )
    if augment is not None and augment.hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(steps)


def make_dataloader(
    data: ArrayDataset,
    batch_size: int,
    mean: list[float],
    std: list[float],
    cfg: LoaderConfig,
    *,
    train: bool,
    augment: AugmentConfig | None = None,
    pin_memory: bool = False,
    generator: torch.Generator | None = None,
) -> DataLoader[Batch]:
    """Classic pipeline; `generator` fixes the shuffle order and the workers' base seed."""
    transform = sample_transform(mean, std, augment if train else None, data.images.shape[1])
    workers = cfg.num_workers
    return DataLoader(
        _ArrayImages(data, transform),
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(data) > batch_size,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=cfg.persistent_workers and workers > 0,
        prefetch_factor=cfg.prefetch_factor if workers > 0 else None,
        generator=generator,
    )


def train_batches(
    config: TrainConfig,
    data: ArrayDataset,
    device: torch.device,
    mean: list[float],
    std: list[float],
) -> tuple[DeviceLoader | DataLoader[Batch], Callable[[int], None]]:
    """The config's training loader and its `set_epoch(epoch)`, which fixes that epoch's
    shuffle order and augmentation draws (a resumed run replays them)."""
    if config.loader.kind == "device":
        loader = DeviceLoader(
            data,
            config.batch_size,
            device,
            mean,
            std,
            train=True,
            augment=config.augment,
            channels_last=config.channels_last,
            seed=config.seed,
        )
        return loader, loader.set_epoch
    gen = torch.Generator()
    dl = make_dataloader(
        data,
        config.batch_size,
        mean,
        std,
        config.loader,
        train=True,
        augment=config.augment,
        pin_memory=config.loader.pin_memory and device.type == "cuda",
        generator=gen,
    )

    def set_epoch(epoch: int) -> None:
        gen.manual_seed(epoch_seed(config.seed, epoch))  # fixes the shuffle and workers' base seed

    return dl, set_epoch
