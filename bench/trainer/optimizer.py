"""AdamW step: fused against torch's other two implementations, on this machine's device.

    python -m bench.trainer.optimizer [--steps 50] [--json PATH]

For each registered CIFAR model (its default size and `fastnet`'s preset), times one
`optimizer.step()` over all parameters with random gradients (median of `--steps` after 5
warm-up steps), side by side in one run, for AdamW with `fused=True` (what the trainer uses),
`foreach=True`, and the single-tensor loop (torch's default on the CPU). Reads of device values
per step are counted with `trainable.training.syncs`: on the CPU the two unfused paths read each
parameter's step counter every step (on a GPU those counters live on the host: no sync).
Prints a table and writes bench/results/optimizer.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from bench.support.env import environment, write_json
from bench.trainer.roofline import median_s
from trainable.model.registry import build_model
from trainable.training.syncs import count_host_syncs

MODELS = [("smallnet", 20, 3), ("resnet9", 64, 1), ("fastnet", 64, 2)]
VARIANTS: dict[str, dict[str, bool]] = {
    "fused": {"fused": True},
    "foreach": {"foreach": True},
    "single-tensor": {"foreach": False},
}


def step_times(
    params: list[torch.nn.Parameter], device: torch.device, steps: int, kind: dict[str, bool]
) -> tuple[float, int]:
    """Median seconds per step, and host reads in one step."""
    opt = torch.optim.AdamW(
        params, lr=1e-3, weight_decay=0.1, fused=kind.get("fused"), foreach=kind.get("foreach")
    )
    for p in params:
        p.grad = torch.randn_like(p)
    for _ in range(5):  # warm-up: the state tensors are created on the first step
        opt.step()
    with count_host_syncs(device) as count:
        opt.step()
    return median_s(opt.step, device, steps, warmup=0), count.reads


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--json", type=Path, help="output (default bench/results/optimizer.json)")
    args = p.parse_args(argv)
    env = environment()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows: list[dict[str, Any]] = []
    print(
        f"device: {env['gpu'] or env['cpu']}, torch {env['torch']}, {env['torch_threads']} threads\n"
    )
    print(
        "| model | params | fused ms | foreach ms | single-tensor ms | reads/step (fused / foreach / single) |"
    )
    print("|---|---|---|---|---|---|")
    for name, width, depth in MODELS:
        torch.manual_seed(0)
        net = build_model(name, 10, width, depth, 0.0).to(device)
        net = net.to(memory_format=torch.channels_last)  # as the trainer lays out conv weights
        params = list(net.parameters())
        row: dict[str, Any] = {
            "model": f"{name} width {width}",
            "params": sum(q.numel() for q in params),
        }
        for variant, kind in VARIANTS.items():
            median_s, reads = step_times(params, device, args.steps, kind)
            row[f"{variant}_ms"], row[f"{variant}_reads_per_step"] = median_s * 1e3, reads
        row["single_tensor_over_fused"] = row["single-tensor_ms"] / row["fused_ms"]
        rows.append(row)
        print(
            f"| {row['model']} | {row['params']:,} | {row['fused_ms']:.2f} | {row['foreach_ms']:.2f} | "
            f"{row['single-tensor_ms']:.2f} | {row['fused_reads_per_step']} / "
            f"{row['foreach_reads_per_step']} / {row['single-tensor_reads_per_step']} |"
        )
    payload = {"device": str(device), "steps": args.steps, "rows": rows, "environment": env}
    print(f"-> {write_json('optimizer', payload, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
