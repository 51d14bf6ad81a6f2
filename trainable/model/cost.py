"""What a trained network costs to deploy: parameters, multiply-accumulates per image, and the
latency of one image on the device it trained on.

Measured by the trainer after the first epoch when `measure_cost` is on (a search with
`constraints` turns it on), so a trial that a scheduler stops early has its figures too. MACs
come from torch's own `FlopCounterMode` (two FLOPs a multiply-accumulate), latency from the
network as the trainer evaluates it (eval mode, the run's autocast and memory format),
timed after a warm-up, median of `LATENCY_RUNS`. Imports torch only.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

LATENCY_WARMUP = 3
LATENCY_RUNS = 15

# The names the figures are reported under (trials.parquet columns, `constraints` keys).
PARAMS_M = "params_m"  # millions of parameters
MACS_M = "macs_m"  # millions of multiply-accumulates for one image
LATENCY_MS = "latency_ms"  # milliseconds for one image, batch 1
COST_KEYS = (PARAMS_M, MACS_M, LATENCY_MS)


@dataclass(frozen=True)
class ModelCost:
    params_m: float
    macs_m: float
    latency_ms: float

    def metrics(self) -> dict[str, float]:
        return {PARAMS_M: self.params_m, MACS_M: self.macs_m, LATENCY_MS: self.latency_ms}


def measure_cost(
    net: nn.Module,
    shape: tuple[int, int, int],
    device: torch.device,
    autocast: torch.autocast,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> ModelCost:
    """The cost of `net` for one image of `shape` (channels, height, width). Leaves the network
    in the mode it found it in."""
    params = sum(p.numel() for p in net.parameters())
    x = torch.zeros((1, *shape), device=device).contiguous(memory_format=memory_format)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode(), autocast:
            counter = FlopCounterMode(display=False)
            with counter:
                net(x)
            times = []
            for i in range(LATENCY_WARMUP + LATENCY_RUNS):
                t0 = time.perf_counter()
                net(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= LATENCY_WARMUP:
                    times.append(time.perf_counter() - t0)
    finally:
        net.train(was_training)
    return ModelCost(
        params_m=params / 1e6,
        macs_m=counter.get_total_flops() / 2 / 1e6,
        latency_ms=1000 * statistics.median(times),
    )
