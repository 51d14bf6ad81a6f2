"""What the machine a run plans for has: cores, memory, GPUs and native bf16."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_gib: float
    gpus: int = 0
    gpu_name: str = ""
    bf16: bool = False  # native bf16: Ampere+ GPU, or a CPU with AVX512-BF16/AMX
    cpu_name: str = ""

    def line(self) -> str:
        gpu = f", {self.gpus} x {self.gpu_name}" if self.gpus else ", no GPU"
        return (
            f"{self.cpus} cores ({self.cpu_name or 'CPU'}), {self.memory_gib:.0f} GiB{gpu}, "
            f"bf16 {'native' if self.bf16 else 'not native (fp32)'}"
        )


def detect() -> Machine:
    import torch

    from trainable.training.runtime import cpu_has_native_bf16, cpu_model

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return Machine(
        cpus=int(cpus or 1),
        memory_gib=memory,
        gpus=gpus,
        gpu_name=torch.cuda.get_device_name(0) if gpus else "",
        bf16=(
            torch.cuda.is_bf16_supported(including_emulation=False)
            if gpus
            else cpu_has_native_bf16()
        ),
        cpu_name=cpu_model(),
    )
