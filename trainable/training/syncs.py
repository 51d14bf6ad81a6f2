"""Counting what makes the host wait for the device, or moves data across the bus.

The trainer's hot loop promises no host synchronisation inside an epoch: loss and accuracy are
accumulated on the device and read once at its end, and the device loader sends an epoch's
shuffle order and augmentation draws in one copy at its start. `count_host_syncs()` checks that
promise on any device, so tests on a CPU (and `bench/device/gpu.py` on a GPU) can hold the code to it:

- On every device, a `TorchDispatchMode` sees each ATen op and counts
  * reads of a value on that device into Python (`.item()`, `bool(t)`, `float(t)`, `int(t)`),
  * copies between devices, host-to-device and device-to-host,
  * ops whose output size depends on the data (`nonzero`, `masked_select`, `unique`), which a
    GPU can only run by telling the host the size first.
- On CUDA, PyTorch's own sync debug mode adds the synchronising CUDA calls made inside ops.

`.tolist()` and `.numpy()` of a CPU tensor are no ATen op, so on the CPU they go unseen; on a
GPU, or on the `meta` device that tests use as a stand-in for one, they begin with a
device-to-host copy, which is counted. Counting slows every op: never time code inside it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_READS = {torch.ops.aten._local_scalar_dense.default}
_COPIES = {
    torch.ops.aten._to_copy.default,
    torch.ops.aten.copy_.default,
    torch.ops.aten._copy_from.default,
    torch.ops.aten._copy_from_and_resize.default,
}
_DATA_DEPENDENT = {
    torch.ops.aten.nonzero.default,
    torch.ops.aten.masked_select.default,
    torch.ops.aten._unique2.default,
    torch.ops.aten.unique_consecutive.default,
    torch.ops.aten.unique_dim.default,
}


@dataclass
class SyncCount:
    reads: int = 0  # a device value read into Python
    copies_to_device: int = 0  # host memory copied to another device
    copies_to_host: int = 0  # another device's memory copied to the host
    data_dependent_shapes: int = 0
    cuda_syncs: int | None = None  # from CUDA's sync debug mode; None where not measured
    examples: list[str] = field(default_factory=list)  # the first few ops counted, for messages

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _devices(values: Any) -> set[torch.device]:
    flat = values if isinstance(values, list | tuple) else [values]
    return {v.device for v in flat if isinstance(v, torch.Tensor)}


class _Counter(TorchDispatchMode):
    def __init__(self, count: SyncCount, device: torch.device) -> None:
        super().__init__()
        self.count, self.device_type = count, device.type

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        kind = ""
        # Reads and data-dependent shapes count only on the watched device: on a GPU, reading
        # a host tensor (e.g. an unfused Adam's step counter, kept on the host) makes nobody wait.
        on_device = any(d.type == self.device_type for d in _devices(list(args)))
        if func in _READS and on_device:
            kind, self.count.reads = "read", self.count.reads + 1
        elif func in _DATA_DEPENDENT and on_device:
            kind = "data-dependent shape"
            self.count.data_dependent_shapes += 1
        elif func in _COPIES:
            sources, results = _devices(list(args)), _devices(out)
            if sources != results and sources and results:
                to_host = any(d.type == "cpu" for d in results)
                kind = "copy to host" if to_host else "copy to device"
                if to_host:
                    self.count.copies_to_host += 1
                else:
                    self.count.copies_to_device += 1
        if kind and len(self.count.examples) < 5:
            self.count.examples.append(f"{kind}: {func}")
        return out


@contextlib.contextmanager
def count_host_syncs(device: torch.device) -> Iterator[SyncCount]:
    """Count, in the block, every op that would make the host wait for `device` or cross the bus."""
    count = SyncCount()
    cuda = device.type == "cuda"
    previous = torch.cuda.get_sync_debug_mode() if cuda else 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            with _Counter(count, device):
                yield count
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(previous)
    if cuda:
        count.cuda_syncs = sum("synchroniz" in str(w.message) for w in caught)
    for w in caught:  # pass on every other warning unchanged
        if not (cuda and "synchroniz" in str(w.message)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
