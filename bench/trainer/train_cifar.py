"""Real-data run: the production command on CIFAR-10, timed end to end, recorded as JSON.

    python -m bench.trainer.train_cifar --data-root ../shared/datasets/cifar10-jpeg [--set epochs=15]

Runs `python -m trainable train --config configs/cifar10_smallnet.yaml --test` in a fresh
process (the exact production path, data loading included) and records wall time, epochs,
per-epoch validation accuracy and the final test accuracy. Accuracies on the JPEG copy are
labelled as such: it is lossy (quality 75), so they sit a little below official CIFAR-10.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.support.env import environment, write_json


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-root", required=True)
    p.add_argument("--config", default="configs/cifar10_smallnet.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", type=Path, help="output JSON (default bench/results/train_cifar.json)")
    args = p.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench-train-")) / "run"
    cmd = [
        sys.executable,
        "-m",
        "trainable",
        "train",
        "--config",
        args.config,
        "--data-root",
        args.data_root,
        "--out",
        str(out),
        "--test",
    ]
    for item in args.overrides:
        cmd += ["--set", item]
    env = environment()  # before the run: the commit that is measured
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall_s = time.perf_counter() - t0
    result = json.loads((out / "result.json").read_text())
    config = (out / "config.yaml").read_text()
    data_label = "CIFAR-10 (JPEG q75 copy)" if "jpeg" in args.data_root.lower() else args.data_root
    history = result["history"]
    payload = {
        "command": " ".join(cmd[1:]).replace(str(out), "<tmp>"),
        "data": data_label,
        "environment": env,
        "epochs_run": result["epochs_run"],
        "wall_s": wall_s,
        "train_s_total": sum(h["train_s"] for h in history),
        "median_images_per_s": sorted(h["images_per_s"] for h in history)[len(history) // 2],
        "best_val_acc": result["best_metric"],
        "test_accuracy": result.get("test_accuracy"),
        "val_acc_by_epoch": [round(h["val_acc"], 4) for h in history],
        "epoch_s": [round(h["epoch_s"], 3) for h in history],
        "config_yaml": config,
    }
    path = write_json("train_cifar", payload, args.json)
    print(
        f"\n| data | epochs | wall | median img/s | best val acc | test acc |\n|---|---|---|---|---|---|\n"
        f"| {data_label} | {payload['epochs_run']} | {wall_s / 60:.1f} min | "
        f"{payload['median_images_per_s']:.0f} | {payload['best_val_acc']:.2%} | "
        f"{payload['test_accuracy']:.2%} |\n-> {path}"
    )


if __name__ == "__main__":
    main()
