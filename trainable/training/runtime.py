"""Device, precision and backend flags, resolved from the config inside `train()`.

Nothing here runs at import time. `backend_flags` sets TF32 / cuDNN / determinism for the
duration of a run and restores the previous values afterwards, so the trainer can be used as a
library without leaving global state behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from trainable.config import TrainConfig
from trainable.errors import DeviceError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype  # autocast dtype; float32 means autocast off

    @property
    def amp(self) -> bool:
        return self.dtype != torch.float32

    @property
    def uses_grad_scaler(self) -> bool:
        # fp16 has too little range for small gradients; bf16 has fp32's range and needs none.
        return self.dtype == torch.float16

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.amp)

    def describe(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return f"{name} / {str(self.dtype).removeprefix('torch.')}"


def resolve(config: TrainConfig) -> Runtime:
    cuda = torch.cuda.is_available()
    if config.device == "cuda" and not cuda:
        raise DeviceError(
            "device: cuda was requested but no CUDA GPU is visible on this machine; "
            "set device: auto (or --set device=cpu) to train on the CPU"
        )
    device = torch.device("cuda" if config.device != "cpu" and cuda else "cpu")
    dtype = _auto_dtype(device) if config.precision == "auto" else _DTYPES[config.precision]
    return Runtime(device, dtype)


def _auto_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the hardware does it natively; fp16 on older GPUs; fp32 on other CPUs.

    Without AVX512-BF16/AMX a CPU emulates bf16 convolutions, which measured ~12x slower than
    fp32 on this project's AVX2 machine (bench/trainer/loader.py notes the figures).
    """
    if device.type == "cuda":
        return (
            torch.bfloat16
            if torch.cuda.is_bf16_supported(including_emulation=False)
            else torch.float16
        )
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def _cpuinfo_field(name: str) -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            line = next((ln for ln in fh if ln.startswith(name)), "")
    except OSError:
        return ""
    return line.partition(":")[2].strip()


def cpu_has_native_bf16() -> bool:
    flags = _cpuinfo_field("flags").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_model() -> str:
    import platform

    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


@contextlib.contextmanager
def backend_flags(config: TrainConfig, runtime: Runtime) -> Iterator[None]:
    """Apply TF32, cuDNN autotuning and determinism for one run; restore them afterwards."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        if runtime.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = config.tf32
            torch.backends.cudnn.allow_tf32 = config.tf32
            torch.backends.cudnn.benchmark = config.cudnn_benchmark and not config.deterministic
        if config.deterministic:
            # cuBLAS needs a fixed workspace to be deterministic; harmless on the CPU.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield
    finally:
        (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic,
            det,
            warn_only,
        ) = saved
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
