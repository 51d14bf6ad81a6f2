"""Recipe variants side by side, several seeds each, under bench/device/gpu.py's protocol.

    python -m bench.trainer.recipe_sweep --data-root DATA --seeds 3 \
        --variant base: --variant w80:model.width=80 --variant lr9:optimizer.sgd.lr_per_1024=9
    python -m bench.trainer.recipe_sweep --smoke      # tiny, on the CPU: checks the bench, not a result
    python -m bench.trainer.recipe_sweep --plot RESULT.json --png CURVE.png --anchor 0.9085

Each variant is `NAME:KEY=VALUE,KEY=VALUE` over `--config` (default the fastnet preset). Every
run trains on all 50,000 training images with the test split read after every epoch (airbench's
protocol, no model selection on it: the figure is the final epoch's), timed with CUDA events
through the trainer's public hooks. One cold 1-epoch run goes first (CUDA context, cuDNN
autotuning). Per variant: each seed's final test accuracy and curve, the median, and the summed
training-phase seconds, so accuracy can be read against compute. Writes
bench/results/recipe_sweep.json (`--json`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench.device.gpu import SMOKE_OVERRIDES, data_label, full_train_splits, more_seeds, train_run
from bench.support.env import environment, write_json
from trainable.config import TrainConfig, build_config, deep_merge, load_config
from trainable.data.datasets import load_splits
from trainable.training.runtime import resolve


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, sep, sets = text.partition(":")
    if not sep or not name:
        raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE,... (or NAME: for none)")
    return name, [s for s in sets.split(",") if s]


def run_variant(
    config: TrainConfig, sets: list[str], seeds: Sequence[int], data: Any, work: Path
) -> dict[str, Any]:
    variant = build_config(config.to_dict(), sets)
    runs = more_seeds(variant, data, resolve(variant).device, seeds, work)
    finals = [r["final_test_acc"] for r in runs]
    return {
        "sets": sets,
        "final_test_acc": finals,
        "median_final_test_acc": statistics.median(finals),
        "median_train_s": statistics.median(r["train_s"] for r in runs),
        "runs": runs,
    }


def plot_curves(result: Path, png: Path, anchor: float | None, only: Sequence[str] = ()) -> Path:
    """Test accuracy against epochs per variant: the median over seeds, the seeds' range
    shaded; the anchor (a final accuracy only, airbench94 at 9.9 epochs) as one marked point."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    payload = json.loads(result.read_text())
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, v in payload["variants"].items():
        if only and name not in only:
            continue
        curves = np.array([r["test_acc_by_epoch"] for r in v["runs"]]) * 100
        epochs = np.arange(1, curves.shape[1] + 1)
        label = f"{name} ({' '.join(v['sets']) or 'preset'}): {v['median_final_test_acc']:.2%}"
        ax.plot(epochs, np.median(curves, axis=0), marker="o", ms=3, label=label)
        ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), alpha=0.2)
    if anchor is not None:
        ax.plot([9.9], [anchor * 100], "k*", ms=12, label=f"anchor airbench94, final: {anchor:.2%}")
    ax.set(xlabel="epoch", ylabel="test accuracy, % (6-view TTA)", ylim=(60, 93))
    ax.set_title(f"{payload['data']}, {payload['environment'].get('gpu') or 'CPU'}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    return png


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-root")
    p.add_argument("--config", default="configs/cifar10_fastnet.yaml")
    p.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,...")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--smoke", action="store_true", help="tiny CPU run: checks the bench")
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path, help="plot this result JSON instead of running")
    p.add_argument("--png", type=Path, help="with --plot: the image to write")
    p.add_argument("--anchor", type=float, help="with --plot: the anchor's final accuracy")
    p.add_argument("--only", default="", help="with --plot: variant names, comma-separated")
    args = p.parse_args(argv)
    if args.plot:
        png = args.png or args.plot.with_suffix(".png")
        only = [n for n in args.only.split(",") if n]
        print(f"-> {plot_curves(args.plot, png, args.anchor, only)}")
        return 0
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA GPU: run with --smoke for the CPU smoke test", file=sys.stderr)
        return 2
    variants = [parse_variant(v) for v in args.variant or ["base:"]]
    env = environment()
    if args.smoke:
        base = build_config(deep_merge(load_config(args.config).to_dict(), SMOKE_OVERRIDES))
    else:
        base = load_config(args.config, [f"dataset.root={args.data_root}", "device=cuda"])
    if args.smoke:  # shared CI cores: one thread, as bench/device/gpu.py's smoke mode
        torch.set_num_threads(1)
    splits = load_splits(base.dataset)
    data = full_train_splits(splits)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as work:
        train_run(
            base.model_copy(update={"epochs": 1}), data, resolve(base).device, Path(work) / "cold"
        )
        for name, sets in variants:
            results[name] = run_variant(base, sets, range(args.seeds), data, Path(work) / name)
            r = results[name]
            finals = ", ".join(f"{a:.2%}" for a in r["final_test_acc"])
            print(
                f"| {name} | {' '.join(sets) or '(preset)'} | {finals} | "
                f"{r['median_final_test_acc']:.2%} | {r['median_train_s']:.2f} |",
                flush=True,
            )
    payload = {
        "smoke": bool(args.smoke),
        "data": data_label(splits, args.data_root),
        "config": args.config,
        "epochs": base.epochs,
        "variants": results,
        "environment": env,
    }
    print(
        f"-> {write_json('recipe_sweep_smoke' if args.smoke else 'recipe_sweep', payload, args.json)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
