"""The same search with results on a local folder and in a bucket, side by side.

    python -m bench.faults.bucket [SPEC] [--data-root DIR] [--repeats 3] [--set KEY=VALUE ...]

The bucket is a real S3 protocol server on 127.0.0.1 (moto in server mode, as in the tests),
so the figures are the cost of going through `pyarrow.fs` and the S3 protocol, with no network
latency: a lower bound for a real object store. Each repeat runs `python -m tuner run` as its
own process, local then bucket, and times the whole command. Printed and saved
(bench/results/bucket.json): wall time of each run, the medians, their ratio, and the objects
and bytes the bucket holds after one search.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.support.env import environment, write_json
from bench.support.services import S3_CREDENTIALS, start_s3_server
from bench.support.specs import tiny_spec
from trainable.config import deep_merge, parse_overrides, read_yaml

REPO = Path(__file__).resolve().parents[2]


def timed_run(spec_file: Path, storage: str, env: dict[str, str]) -> float:
    cmd = [sys.executable, "-m", "tuner", "run", str(spec_file), "--storage-path", storage]
    t0 = time.perf_counter()
    done = subprocess.run(
        [*cmd, "--no-dashboard"], cwd=REPO, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{storage}: the search failed: {done.stderr.strip().splitlines()[-1]}")
    return wall


def bucket_contents(endpoint: str, bucket: str, prefix: str) -> dict[str, int]:
    import pyarrow.fs

    fs = pyarrow.fs.S3FileSystem(endpoint_override=endpoint, region="us-east-1")
    infos = fs.get_file_info(pyarrow.fs.FileSelector(f"{bucket}/{prefix}", recursive=True))
    files = [i for i in infos if i.type == pyarrow.fs.FileType.File]
    return {"objects": len(files), "bytes": sum(i.size for i in files)}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("spec", type=Path, nargs="?", help="default: the tests' tiny synthetic search")
    p.add_argument("--data-root")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    env_info = environment()
    raw = read_yaml(args.spec) if args.spec else tiny_spec("bench-bucket", "results")
    raw = deep_merge(raw, parse_overrides(args.overrides))
    if args.data_root:
        raw = deep_merge(raw, {"base": {"dataset": {"root": args.data_root}}})
    work = Path(tempfile.mkdtemp(prefix="bench-bucket-"))
    server, endpoint = start_s3_server()
    try:
        result = measure(raw, work, endpoint, args.repeats)
    finally:
        server.terminate()
    result["environment"] = env_info
    print(write_json("bucket", result))


def measure(raw: dict[str, Any], work: Path, endpoint: str, repeats: int) -> dict[str, Any]:
    import os

    import pyarrow.fs

    env = {**os.environ, **S3_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
    env["HPSEARCH_CACHE"] = str(work / "cache")
    fs = pyarrow.fs.S3FileSystem(
        endpoint_override=endpoint, region="us-east-1", allow_bucket_creation=True
    )
    fs.create_dir("bench")
    walls: dict[str, list[float]] = {"local": [], "bucket": []}
    for i in range(repeats):
        spec_file = work / f"spec-{i}.yaml"
        spec_file.write_text(yaml.safe_dump(raw | {"name": f"{raw['name']}-{i}"}))
        walls["local"].append(timed_run(spec_file, str(work / "local"), env))
        walls["bucket"].append(timed_run(spec_file, f"s3://bench/run-{i}", env))
        print(f"repeat {i}: local {walls['local'][-1]:.1f} s, bucket {walls['bucket'][-1]:.1f} s")
    med = {k: statistics.median(v) for k, v in walls.items()}
    contents = bucket_contents(endpoint, "bench", f"run-0/{raw['name']}-0")
    print("\n| storage | median wall (s) | runs (s) |\n|---|---|---|")
    for k, v in walls.items():
        print(f"| {k} | {med[k]:.1f} | {', '.join(f'{w:.1f}' for w in v)} |")
    print(
        f"\nbucket / local: {med['bucket'] / med['local']:.3f}x; one search in the bucket: "
        f"{contents['objects']} objects, {contents['bytes'] / 1e6:.1f} MB"
    )
    return {
        "spec": raw,
        "wall_s": walls,
        "median_wall_s": med,
        "bucket_over_local": med["bucket"] / med["local"],
        "bucket_contents": contents,
    }


if __name__ == "__main__":
    main()
