"""The two ceilings a GPU trainer runs under, and the work per image held against them.

`ceilings()` measures the device's matmul rate (bf16, and the training dtype when another) and
its copy bandwidth; `flops_per_image()` counts a model's forward and training FLOPs. Part of
`bench/device/gpu.py` (issue #6); timings use CUDA events on a GPU and a clock on the CPU.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from trainable.config import TrainConfig
from trainable.model.network import build_network
from trainable.training.runtime import resolve


def time_s(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds `fn` takes: CUDA events on a GPU (device time, no host jitter), else a clock."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_s(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(time_s(fn, device) for _ in range(reps))


# --- 1. ceilings ----------------------------------------------------------------------------


def matmul_s(n: int, device: torch.device, reps: int, dtype: torch.dtype) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return median_s(lambda: torch.matmul(a, b, out=out), device, reps)


def copy_s(n_bytes: int, device: torch.device, reps: int) -> float:
    src = torch.empty(n_bytes, device=device, dtype=torch.uint8).random_()
    dst = torch.empty_like(src)
    return median_s(lambda: dst.copy_(src), device, reps)


def ceilings(device: torch.device, smoke: bool, train_dtype: torch.dtype) -> dict[str, Any]:
    """The device's bf16 matmul rate and copy bandwidth: the two roofs the trainer runs under.

    When training runs in another dtype (fp32 on CPUs without native bf16, fp16 on pre-Ampere
    GPUs) that dtype's matmul rate is measured too: the ceiling the trainer is held against.
    """
    n = 256 if smoke else 8192  # 8192^3: ~1 TFLOP per matmul, long enough to time cleanly
    n_bytes = (16 if smoke else 1024) * 2**20
    reps = 5 if smoke else 50
    mm_s = matmul_s(n, device, reps, torch.bfloat16)
    tflops = {"bfloat16": 2 * n**3 / mm_s / 1e12}
    if train_dtype != torch.bfloat16:
        other_s = matmul_s(n, device, reps, train_dtype)
        tflops[str(train_dtype).removeprefix("torch.")] = 2 * n**3 / other_s / 1e12
    cp_s = copy_s(n_bytes, device, reps)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "matmul_bf16_tflops": tflops["bfloat16"],
        "matmul_tflops_by_dtype": tflops,
        "matmul_n": n,
        "matmul_median_s": mm_s,
        # A copy reads and writes every byte: 2x the buffer crosses the memory bus.
        "copy_gb_per_s": 2 * n_bytes / cp_s / 1e9,
        "copy_buffer_bytes": n_bytes,
        "copy_median_s": cp_s,
        "copy_definition": "device-to-device copy_, (read + write bytes) / median time",
        "reps": reps,
    }


# --- 2. FLOPs per image ---------------------------------------------------------------------


def flops_per_image(config: TrainConfig, num_classes: int, image_size: int) -> dict[str, Any]:
    """Forward and forward + backward FLOPs of one training batch, per image."""
    rt = resolve(config)
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    # The trainer's network (stem, frozen BN scales): frozen weights need no gradient.
    net = build_network(config.model, num_classes)
    net = net.to(rt.device, memory_format=fmt).train()  # type: ignore[call-overload]
    batch = min(config.batch_size, 64)  # FLOPs are linear in the batch; a small one suffices
    x = torch.randn(batch, 3, image_size, image_size, device=rt.device)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, num_classes, (batch,), device=rt.device)
    with FlopCounterMode(display=False) as fwd, rt.autocast():
        logits = net(x)
    with FlopCounterMode(display=False) as bwd:
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
    forward, backward = fwd.get_total_flops(), bwd.get_total_flops()
    return {
        "params": sum(p.numel() for p in net.parameters()),
        "forward_flops_per_image": forward / batch,
        "train_flops_per_image": (forward + backward) / batch,
        "counted_batch": batch,
        "counter": "torch.utils.flop_counter: conv and matmul only, 2 FLOPs per multiply-add",
    }
