"""Three batch pipelines with the same augmentation semantics (`trainable.data.augment`: padded
random crop, horizontal flip; `hflip_mode: alternating` in the first two only), then per-channel
normalisation.

- `DeviceLoader` (`loader.kind: device`): the uint8 split lives on the training device; a whole
  batch is cropped and flipped by one gather and normalised in one fused op. No per-sample
  Python work, no workers. The fast path, for splits that fit.
- `StreamLoader` (`loader.kind: stream`): the very same batches, gathered from host memory or
  the memory-mapped decode cache a batch at a time, prefetched by a thread and copied to the
  device from pinned memory. `kind: device` switches to it when a split does not fit.
- `make_dataloader` (`loader.kind: dataloader`): the classic `torch.utils.data.DataLoader` with
  torchvision transforms per sample in worker processes, pinned memory, persistent workers and
  prefetching.

All shuffle with a generator seeded from (seed, epoch), so an epoch's order is reproducible
and a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainable.config import AugmentConfig, LoaderConfig, TrainConfig
from trainable.data.augment import (
    AugmentDraws,
    alternating_flips,
    crop_flip,
    draw_augment,
    epoch_generator,
    epoch_seed,
)
from trainable.data.datasets import ArrayDataset
from trainable.data.datasize import device_shortfall, heap_shortfall
from trainable.data.mapped import MappedImages, gather

Batch = tuple[torch.Tensor, torch.Tensor]


# Pixel values per block of `channel_stats` (64 MB as float64), whatever the image size.
_STATS_BLOCK_VALUES = 8 * 1024 * 1024


def channel_stats(images: np.ndarray | MappedImages) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units, computed on the training split a block of
    images at a time (a split larger than memory is read once, never held)."""
    total = np.zeros(3)
    squares = np.zeros(3)
    block = max(1, _STATS_BLOCK_VALUES // int(np.prod(images.shape[1:])))
    for start in range(0, len(images), block):
        x = np.asarray(images[start : start + block], dtype=np.float64).reshape(-1, 3) / 255.0
        total += x.sum(axis=0)
        squares += np.square(x).sum(axis=0)
    count = len(images) * images.shape[1] * images.shape[2]
    mean = total / count
    return mean.tolist(), np.sqrt(np.maximum(squares / count - mean**2, 0.0)).tolist()


def train_steps(n_images: int, batch_size: int) -> int:
    """Training batches per epoch, in both loaders: the ragged last batch is dropped
    (BatchNorm dislikes tiny batches) unless it is the only one."""
    return max(1, n_images // batch_size)


class _PlannedLoader:
    """What the device and streaming loaders share, so they yield the same batches: an epoch's
    shuffle order and augmentation draws from a CPU generator seeded by (seed, epoch) (CPU and
    GPU runs see the same batches), and a batch finished on the device: uint8 NHWC rows
    cropped and flipped by one gather, normalised in one fused op."""

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
        prefetch: int = 2,  # batches read ahead (the streaming loader only)
    ) -> None:
        self.n, self.batch_size, self.device = len(data), batch_size, device
        self.train, self.seed, self.prefetch = train, seed, prefetch
        self.augment = augment or AugmentConfig(crop_padding=0, hflip=False)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.epoch = 0
        self._hold(data)

    def _hold(self, data: ArrayDataset) -> None:
        """Keep the split where this loader reads it from."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return train_steps(self.n, self.batch_size) if self.train else -(-self.n // self.batch_size)

    def _windows(self) -> Iterator[slice]:
        for i in range(len(self)):
            yield slice(i * self.batch_size, (i + 1) * self.batch_size)

    def _plan(self) -> tuple[torch.Tensor, AugmentDraws | None]:
        """This epoch's order and draws, on the CPU (the callers move them in one copy)."""
        if not self.train:
            return torch.arange(self.n), None
        gen = epoch_generator(self.seed, self.epoch)
        order = torch.randperm(self.n, generator=gen)
        flip = None
        if self.augment.hflip and self.augment.hflip_mode == "alternating":
            flip = alternating_flips(self.n, self.seed, self.epoch)[order]
        return order, draw_augment(self.n, self.augment, gen, flip)

    def _finish(self, rows: torch.Tensor, draws: AugmentDraws | None) -> torch.Tensor:
        x = rows.permute(0, 3, 1, 2)  # uint8 NCHW view
        if draws is not None:
            reflect = self.augment.pad_mode == "reflect"
            x = crop_flip(x, self.augment.crop_padding, draws, reflect)
        return ((x.float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)


def _draws_to(draws: AugmentDraws, device: torch.device) -> AugmentDraws:
    plan = torch.stack([draws.offsets_y, draws.offsets_x, draws.flip.long()]).to(device)
    return AugmentDraws(plan[0], plan[1], plan[2].bool())


class DeviceLoader(_PlannedLoader):
    """Batches from a device-resident uint8 tensor: the batch loop never touches host memory
    (the epoch's order and draws reach the device in one copy at its start)."""

    def _hold(self, data: ArrayDataset) -> None:
        # Kept as NHWC: on the CPU an in-memory (possibly read-only, object-store) array is
        # shared without a copy, and a permuted NHWC batch is already channels_last NCHW.
        self.images = _shared_tensor(data.images).to(self.device)
        self.labels = _shared_tensor(data.labels).to(self.device)

    def __iter__(self) -> Iterator[Batch]:
        order, draws = self._plan()
        if draws is None:
            order = order.to(self.device)
        else:  # one host-to-device copy for the order and every augmentation draw
            plan = torch.stack([order, draws.offsets_y, draws.offsets_x, draws.flip.long()])
            plan = plan.to(self.device)
            order, draws = plan[0], AugmentDraws(plan[1], plan[2], plan[3].bool())
        for window in self._windows():
            idx = order[window]
            yield self._finish(self.images[idx], draws and draws[window]), self.labels[idx]


class StreamLoader(_PlannedLoader):
    """The device loader's batches, read from host memory or the memory-mapped decode cache
    one batch at a time: for a split too large for the device (or for the host's heap).

    A background thread gathers the next `prefetch` batches' rows into (on CUDA, pinned)
    buffers while the current one trains; each goes to the device in one non-blocking copy.
    """

    def _hold(self, data: ArrayDataset) -> None:
        self.images, self.labels = data.images, np.asarray(data.labels)
        self.pin = self.device.type == "cuda"

    def _read(self, idx: np.ndarray) -> Batch:
        rows = torch.empty(
            (len(idx), *self.images.shape[1:]), dtype=torch.uint8, pin_memory=self.pin
        )
        gather(self.images, idx, rows.numpy())
        labels = torch.from_numpy(self.labels[idx])
        return rows, labels.pin_memory() if self.pin else labels

    def __iter__(self) -> Iterator[Batch]:
        order, draws = self._plan()
        index = order.numpy()
        draws = None if draws is None else _draws_to(draws, self.device)
        windows = list(self._windows())
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream") as pool:
            ahead = deque(pool.submit(self._read, index[w]) for w in windows[: self.prefetch])
            for i, window in enumerate(windows):
                rows, labels = ahead.popleft().result()
                if i + self.prefetch < len(windows):
                    ahead.append(pool.submit(self._read, index[windows[i + self.prefetch]]))
                rows = rows.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
                yield self._finish(rows, draws and draws[window]), labels


def _shared_tensor(array: np.ndarray | MappedImages) -> torch.Tensor:
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


def planned_loader(
    config: TrainConfig,
    data: ArrayDataset,
    device: torch.device,
    mean: list[float],
    std: list[float],
    *,
    train: bool,
) -> DeviceLoader | StreamLoader:
    """`loader.kind: device` when the split fits the device, else the same batches streamed
    (said in one line): a split too big never fails halfway, it only runs slower."""
    batch = config.batch_size if train else config.eval_batch_size
    augment = config.augment if train else None
    channels_last = train and config.channels_last
    kind = config.loader.kind
    if kind == "device":
        shortfall = _resident_shortfall(data.images, device)
        if shortfall is not None:
            split = "training" if train else "evaluation"
            print(
                f"{split} split: {shortfall}; streaming its batches from host memory instead "
                "(the same batches as loader.kind: device, read one at a time)",
                file=sys.stderr,
                flush=True,
            )
            kind = "stream"
    cls = DeviceLoader if kind == "device" else StreamLoader
    return cls(
        data, batch, device, mean, std,
        train=train, augment=augment, channels_last=channels_last, seed=config.seed,
        prefetch=config.loader.prefetch_factor,
    )  # fmt: skip


def _resident_shortfall(images: np.ndarray | MappedImages, device: torch.device) -> str | None:
    """Why the device loader cannot hold these images, or None when it can."""
    if device.type == "cuda":
        return device_shortfall(images.nbytes, torch.cuda.mem_get_info(device)[0], str(device))
    if isinstance(images, MappedImages):  # the CPU device loader copies them out of the cache
        return heap_shortfall(images.nbytes)
    return None  # already in memory: the CPU device loader shares the array, no copy


def train_batches(
    config: TrainConfig,
    data: ArrayDataset,
    device: torch.device,
    mean: list[float],
    std: list[float],
) -> tuple[DeviceLoader | StreamLoader | DataLoader[Batch], Callable[[int], None]]:
    """The config's training loader and its `set_epoch(epoch)`, which fixes that epoch's
    shuffle order and augmentation draws (a resumed run replays them)."""
    if config.loader.kind != "dataloader":
        loader = planned_loader(config, data, device, mean, std, train=True)
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
