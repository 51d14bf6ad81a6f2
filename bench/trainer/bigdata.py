"""A data set bigger than it should be: memory and time of decode, loaders and a search (#16).

    python -m bench.trainer.bigdata --data-root ../shared/datasets/cifar10-jpeg --image-size 240 \
        [--before DIR] [--parts decode,loader,search]

At 240x240 the CIFAR-10 JPEG copy is a ~10 GB image folder once decoded (60,000 x 172,800 B).
Every measurement runs in a fresh process whose whole tree (decode workers, Ray's processes and
trial workers) is sampled from /proc (`bench/support/memory.py`: private, file-mapped and shared peaks):
  decode  the folder into an empty cache, the code in DIR (`--before`, a worktree of an older
          commit) and this checkout, one after the other: wall time and peak memory.
  loader  one epoch's batches (crop, flip, normalise; no model) of the device-resident and the
          streaming loader, on a subset both can hold and then on the whole training split:
          images/s (median of `--repeats` passes after a warm-up) and the peak private memory.
  search  `python -m tuner run bench/specs/bigfolder.yaml` (subsets of the folder, at
          `--image-size`), the code
          in DIR and this checkout: wall time, time to the first trial's first epoch, peaks of
          the driver, of the trial workers and of the tree's summed private memory.
The page cache is warm after the first decode (the machine has more memory than the cache).
Writes a table and bench/results/bigdata.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.support.env import environment, write_json
from bench.support.memory import Sampler, mb

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "bench" / "specs" / "bigfolder.yaml"


def run_sampled(
    cmd: list[str], code: Path, env: dict[str, str], watch: Path | None = None
) -> dict[str, Any]:
    """Run `cmd` from the checkout `code`, sampling its process tree; with `watch`, also the
    time until a trial's first result appears below that folder."""
    env = {**os.environ, **env, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    first_epoch = None
    proc = subprocess.Popen(
        cmd, cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    with Sampler(proc.pid) as sampler:
        while proc.poll() is None:
            if (
                watch is not None
                and first_epoch is None
                and any(p.stat().st_size > 0 for p in watch.rglob("result.json"))
            ):
                first_epoch = time.perf_counter() - start
            time.sleep(0.5)
    out = proc.stdout.read() if proc.stdout else ""
    peaks = sampler.peaks
    return {
        "returncode": proc.returncode,
        "wall_s": round(time.perf_counter() - start, 1),
        "first_epoch_s": None if first_epoch is None else round(first_epoch, 1),
        "main_mb": {k: mb(v) for k, v in peaks.of(proc.pid).items()},
        "trial_mb": {
            k: mb(v) if k != "processes" else v for k, v in peaks.largest("ImplicitFunc").items()
        },
        "tree_anon_mb": mb(peaks.total_anon),
        "tail": out.strip().splitlines()[-3:],
    }


def part_decode(root: Path, size: int, codes: dict[str, Path]) -> dict[str, Any]:
    script = (
        "from pathlib import Path; from trainable.data.datasets import load_image_folder; "
        f"load_image_folder(Path({str(root)!r}), {size})"
    )
    results = {}
    for name, code in codes.items():
        cache = Path(tempfile.mkdtemp(prefix="bigdata-cache-", dir=Path.home() / ".cache"))
        try:
            results[name] = run_sampled(
                [sys.executable, "-c", script], code, {"HPSEARCH_CACHE": str(cache)}
            )
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return results


def loader_child(root: Path, size: int, kind: str, n: int | None, repeats: int) -> None:
    """In a fresh process: one loader's passes over the training split; JSON on stdout."""
    import torch

    from trainable.config import AugmentConfig, DatasetConfig
    from trainable.data.datasets import load_splits
    from trainable.data.loaders import DeviceLoader, StreamLoader, channel_stats

    cfg = DatasetConfig(name="imagefolder", root=str(root), image_size=size, train_subset=n)
    data = load_splits(cfg).train
    mean, std = channel_stats(data.images)
    cls = DeviceLoader if kind == "device" else StreamLoader
    start = time.perf_counter()
    loader = cls(
        data, 256, torch.device("cpu"), mean, std, train=True, augment=AugmentConfig(crop_padding=4)
    )
    setup_s = time.perf_counter() - start
    rates = []
    for epoch in range(1, repeats + 2):
        loader.set_epoch(epoch)
        start = time.perf_counter()
        seen = sum(len(y) for _, y in loader)
        rates.append(seen / (time.perf_counter() - start))
    steady = rates[1:] if len(rates) > 1 else rates
    print(
        json.dumps(
            {
                "images": len(data),
                "setup_s": round(setup_s, 2),
                "images_per_s": round(statistics.median(steady)),
            }
        )
    )


def part_loader(root: Path, size: int, subset: int, repeats: int) -> dict[str, Any]:
    results = {}
    for n, reps in ((subset, repeats), (None, 1)):
        for kind in ("device", "stream"):
            cmd = [
                sys.executable,
                "-m",
                "bench.trainer.bigdata",
                "--data-root",
                str(root),
                "--image-size",
                str(size),
            ]
            cmd += ["--child-loader", kind, "--repeats", str(reps), "--subset", str(n or 0)]
            run = run_sampled(cmd, REPO, {})
            child = json.loads(run["tail"][-1]) if run["returncode"] == 0 else {}
            results[f"{kind}/{'subset' if n else 'all'}"] = run | child
    return results


def part_search(root: Path, size: int, codes: dict[str, Path]) -> dict[str, Any]:
    raw = yaml.safe_load(SPEC.read_text())
    raw["base"]["dataset"]["image_size"] = size
    results = {}
    for name, code in codes.items():
        storage = Path(tempfile.mkdtemp(prefix="bigdata-search-"))
        spec = storage / "bigfolder.yaml"
        spec.write_text(yaml.safe_dump(raw))
        try:
            cmd = [sys.executable, "-m", "tuner", "run", str(spec), "--data-root", str(root)]
            cmd += ["--storage-path", str(storage)]
            results[name] = run_sampled(cmd, code, {}, watch=storage)
        finally:
            shutil.rmtree(storage, ignore_errors=True)
    return results


def table(payload: dict[str, Any]) -> str:
    rows = [
        "| measurement | code | wall s | first epoch s | main: anon / file MB | trial: anon / file / shmem MB | tree anon MB | images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for part in ("decode", "loader", "search"):
        for name, r in payload.get(part, {}).items():
            m, t = r["main_mb"], r["trial_mb"]
            trial = f"{t['anon']:,} / {t['file']:,} / {t['shmem']:,}" if t["processes"] else "-"
            rows.append(
                f"| {part} | {name} | {r['wall_s']} | {r.get('first_epoch_s') or '-'} | {m['anon']:,} / {m['file']:,} | "
                f"{trial} | {r['tree_anon_mb']:,} | {r.get('images_per_s', '-')} |"
            )
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--image-size", type=int, default=240)
    p.add_argument("--before", type=Path, help="a checkout of the code to compare against")
    p.add_argument("--parts", default="decode,loader,search")
    p.add_argument("--subset", type=int, default=4000, help="loader: images both loaders hold")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child-loader", choices=["device", "stream"], help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.child_loader:
        loader_child(
            args.data_root, args.image_size, args.child_loader, args.subset or None, args.repeats
        )
        return
    codes = ({"before": args.before.resolve()} if args.before else {}) | {"after": REPO}
    payload: dict[str, Any] = {"environment": environment(), "image_size": args.image_size}
    parts = args.parts.split(",")
    if "decode" in parts:
        payload["decode"] = part_decode(args.data_root, args.image_size, codes)
    if "loader" in parts:
        payload["loader"] = part_loader(args.data_root, args.image_size, args.subset, args.repeats)
    if "search" in parts:
        payload["search"] = part_search(args.data_root, args.image_size, codes)
    print(table(payload))
    print(f"wrote {write_json('bigdata', payload, args.json)}")


if __name__ == "__main__":
    main()
