"""Peak memory of a process tree, sampled from /proc: what a large data set costs each process.

Per process the peaks of three kinds of resident memory, kept apart because they mean
different things on a machine that is short of memory:
  anon   private memory (the heap: copies of images, activations). Only swap can free it.
  file   pages of mapped files (a memory-mapped decode cache). Shared by every process that maps
         the file, and the kernel drops clean ones under pressure.
  shmem  shared memory (Ray's object store, mapped by each process that reads from it).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_FIELDS = {"RssAnon:": "anon", "RssFile:": "file", "RssShmem:": "shmem"}


def _status(pid: int) -> dict[str, int]:
    """Resident memory of `pid` in bytes by kind; {} once it has exited."""
    out = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key = line.split(maxsplit=1)[0] if line.strip() else ""
                if key in _FIELDS:
                    out[_FIELDS[key]] = int(line.split()[1]) * 1024
    except OSError:
        return {}
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def descendants(root: int) -> list[int]:
    """`root` and every process below it (Ray's raylet and its workers are the driver's)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


@dataclass
class Peaks:
    """Peak bytes per process (by kind), the peak of the tree's summed private memory, and a
    label per process (its command line as it last read: Ray renames its workers)."""

    per_process: dict[int, dict[str, int]] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)
    total_anon: int = 0

    def add(self, pid: int, usage: dict[str, int], label: str) -> None:
        peak = self.per_process.setdefault(pid, {"anon": 0, "file": 0, "shmem": 0})
        for kind, value in usage.items():
            peak[kind] = max(peak[kind], value)
        if label:
            self.labels[pid] = label

    def of(self, pid: int) -> dict[str, int]:
        return self.per_process.get(pid, {"anon": 0, "file": 0, "shmem": 0})

    def largest(self, match: str) -> dict[str, int]:
        """The per-kind peaks over processes whose label contains `match`, and how many."""
        pids = [p for p, label in self.labels.items() if match in label]
        best = {kind: max((self.of(p)[kind] for p in pids), default=0) for kind in _FIELDS.values()}
        return best | {"processes": len(pids)}


class Sampler:
    """Samples a process tree every `interval_s` in a thread until stopped."""

    def __init__(self, root: int, interval_s: float = 0.2) -> None:
        self.root, self.interval_s = root, interval_s
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        total = 0
        for pid in descendants(self.root):
            usage = _status(pid)
            if usage:
                self.peaks.add(pid, usage, _cmdline(pid))
                total += usage.get("anon", 0)
        self.peaks.total_anon = max(self.peaks.total_anon, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval_s)


def mb(n: float) -> int:
    return round(n / 1e6)
