"""How big a decoded dataset is, and whether it fits where it is going: checked before any
work starts, so a set too large stops in one line, or is streamed, instead of dying halfway.

Decoded images are uint8 (N, H, W, 3): N x H x W x 3 bytes. The places they go:
- the decode cache on disk (written once, read memory-mapped),
- Ray's object store (the tuner shares in-memory splits with every trial through it; an image
  folder's splits stay in the cache and travel as row numbers),
- the device loader's device: GPU memory, or on the CPU the heap, where an image folder's split
  is copied out of the cache (a split that does not fit is streamed instead).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from trainable.errors import DataError

# The heap check leaves this share of the available memory to everything else (the model,
# batches, evaluation, the interpreter): a split that would take more is streamed instead.
HEAP_SHARE = 0.5


def decoded_bytes(images: int, image_size: int) -> int:
    return images * image_size * image_size * 3


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def available_host_bytes() -> int:
    """Memory this process can still take: the kernel's MemAvailable, lowered to the cgroup's
    remaining limit in a container (where /proc/meminfo shows the whole host's memory).
    `HPSEARCH_HOST_MEMORY_BYTES` overrides it (a smaller machine simulated, in tests)."""
    override = os.environ.get("HPSEARCH_HOST_MEMORY_BYTES")
    if override:
        return int(override)
    candidates = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            candidates.append(int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    if not candidates:  # not Linux: physical pages free, as POSIX reports them
        candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return max(0, min(candidates))


def heap_shortfall(nbytes: int) -> str | None:
    """Why `nbytes` of images cannot be copied into memory (over HEAP_SHARE of what is
    available), or None when they can."""
    have = available_host_bytes()
    if nbytes > HEAP_SHARE * have:
        return (
            f"its images take {human(nbytes)} decoded, more than {HEAP_SHARE:.0%} of the "
            f"{human(have)} of memory available"
        )
    return None


def require_disk(images: int, image_size: int, where: Path) -> None:
    """The decode cache's size against the free space where it is written."""
    need = decoded_bytes(images, image_size)
    where.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(where).free
    if need > free:
        raise DataError(
            f"decoding {images:,} images at {image_size}x{image_size} needs {human(need)} of "
            f"cache, but {where} has {human(free)} free; free space there, point HPSEARCH_CACHE "
            "at a bigger disk, or lower dataset.image_size"
        )


def require_object_store(nbytes: int, capacity: float, images: int) -> None:
    """The splits the tuner shares through Ray's object store against its capacity (Ray
    spills beyond it to disk, slowly, and its memory monitor kills trials near the limit)."""
    if nbytes > 0.8 * capacity:
        raise DataError(
            f"the search's data ({images:,} images, {human(nbytes)} decoded) does not fit 80% of "
            f"Ray's object store ({human(capacity)}); set base.dataset.train_subset (and "
            "val_subset) or a smaller dataset.image_size, or give Ray a larger object store "
            "(ray start --object-store-memory)"
        )


def device_shortfall(nbytes: int, free: int, device: str) -> str | None:
    """Why the device loader cannot put `nbytes` of images on a GPU with `free` bytes free
    (half of it: the model, activations and evaluation batches need the rest), or None."""
    if nbytes > 0.5 * free:
        return (
            f"its images take {human(nbytes)}, more than half of the {human(free)} free on {device}"
        )
    return None
