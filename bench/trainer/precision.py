"""Training-step throughput by precision and memory format, side by side in one run.

    python -m bench.trainer.precision [--config configs/cifar10_smallnet.yaml] [--steps 6]

Times forward + backward + AdamW steps of the config's model on random 32x32 batches on the
training device (CUDA when present), median of `--steps` after warm-up, for fp32 and bf16
autocast, each with and without channels_last. Shows why `precision: auto` picks fp32 on CPUs
that lack native bf16. Prints a table and writes bench/results/precision.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bench.support.env import environment, write_json
from trainable.config import load_config
from trainable.model.registry import build_model
from trainable.training.runtime import cpu_has_native_bf16


def step_rate(
    model_args: tuple[str, int, int, float],
    dtype: torch.dtype,
    channels_last: bool,
    batch: int,
    steps: int,
    device: torch.device,
) -> float:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    name, width, depth, dropout = model_args
    net = build_model(name, 10, width, depth, dropout).to(device, memory_format=fmt)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    times = []
    for i in range(steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default="configs/cifar10_smallnet.yaml")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    env = environment()  # before the run: the commit that is measured
    cfg = load_config(args.config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model_args = (cfg.model.name, cfg.model.width, cfg.model.depth, cfg.model.dropout)
    rows: list[dict[str, Any]] = []
    for dtype in (torch.float32, torch.bfloat16):
        for cl in (False, True):
            rate = step_rate(model_args, dtype, cl, args.batch_size, args.steps, device)
            rows.append(
                {
                    "dtype": str(dtype).removeprefix("torch."),
                    "channels_last": cl,
                    "images_per_s": rate,
                }
            )
            print(f"{rows[-1]['dtype']:9s} channels_last={cl!s:5s} {rate:8.0f} img/s", flush=True)
    base = rows[0]["images_per_s"]
    print("\n| dtype | channels_last | images/s | vs fp32 NCHW |\n|---|---|---|---|")
    for r in rows:
        r["vs_fp32_nchw"] = r["images_per_s"] / base
        print(
            f"| {r['dtype']} | {r['channels_last']} | {r['images_per_s']:.0f} | {r['vs_fp32_nchw']:.2f}x |"
        )
    payload = {
        "device": str(device),
        "native_cpu_bf16": cpu_has_native_bf16(),
        "model": f"{cfg.model.name} width {cfg.model.width} depth {cfg.model.depth}",
        "batch_size": args.batch_size,
        "steps": args.steps,
        "environment": env,
        "rows": rows,
    }
    print(f"-> {write_json('precision', payload, args.json)}")


if __name__ == "__main__":
    main()
