"""Per-trial memory limits, so one greedy trial fails alone instead of starving its neighbours.

GPU: a trial holding a fraction f of a GPU has its CUDA allocator capped to f of the card.
Host: with `resources.memory_mb`, the trial process's private writable memory (heap and
anonymous mappings: RLIMIT_DATA, Linux; shared libraries and the object store's shared
memory do not count) may grow by at most that much beyond what it holds when the trial starts.
An allocation past either cap raises in the trial that made it; Tune records the error and the
search goes on.
"""

from __future__ import annotations

import resource
from pathlib import Path

# Messages of allocation failures that PyTorch raises as a plain RuntimeError on CPU.
_OOM_MARKERS = ("can't allocate memory", "out of memory", "cannot allocate memory")


class TrialOutOfMemory(RuntimeError):
    """A trial ran out of its memory; the message says what to change."""


def cap_gpu_memory(gpu_fraction: float) -> None:
    """With a fraction f of a GPU, cap this process's CUDA memory to f of the card, so one
    greedy trial cannot starve the others packed on it. No-op on CPU or whole GPUs."""
    if 0 < gpu_fraction < 1:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(gpu_fraction, 0)


def _data_segment_bytes() -> int | None:
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


def cap_host_memory(memory_mb: int | None) -> None:
    """Let this process grow by at most `memory_mb` from now on (soft RLIMIT_DATA; the hard limit
    is untouched, so a reused worker can be given a new allowance for its next trial)."""
    current = _data_segment_bytes()
    if current is None:  # not Linux: nothing to enforce
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if memory_mb is None:
        soft = hard  # no cap asked: undo a previous trial's cap in a reused worker
    else:
        soft = current + memory_mb * 2**20
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def is_out_of_memory(err: BaseException) -> bool:
    import torch

    if isinstance(err, MemoryError | torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err).lower() for m in _OOM_MARKERS)


def out_of_memory(
    err: BaseException, memory_mb: int | None, gpu_fraction: float
) -> TrialOutOfMemory:
    where = "GPU" if "cuda" in str(err).lower() else "host"
    limit = (
        f"its {gpu_fraction:g} GPU share"
        if where == "GPU"
        else (f"resources.memory_mb={memory_mb}" if memory_mb else "the host's memory")
    )
    first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return TrialOutOfMemory(
        f"out of {where} memory within {limit} ({first_line}); lower batch_size or the model "
        "size for this trial, or give each trial more memory"
    )
