"""The same command on an existing multi-node Ray cluster (`--address`), on this one machine.

Nodes are real Ray nodes (`ray.cluster_utils.Cluster`, and a `ray start --block` worker) that
are stopped by their own handles, never with `ray stop`. The search runs as its own driver
process, as a user's would, with the project shipped to workers through Ray's runtime_env.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from ray.cluster_utils import Cluster

from tests.conftest import S3, run_cli
from tests.tuner.conftest import write_spec
from trainable.files.storage import read_bytes

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        yield head
    finally:
        head.shutdown()


def tuner_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("tuner", *args, timeout=540)


def alive_nodes(address: str) -> int:
    probe = "import ray; ray.init(address=%r); print(sum(n['Alive'] for n in ray.nodes()))"
    out = subprocess.run(
        [sys.executable, "-c", probe % address], capture_output=True, text=True, timeout=120
    )
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0


def test_search_spreads_over_two_nodes_with_results_in_shared_storage(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    storage = tmp_path / "shared"  # one filesystem: every node sees it, like an NFS mount
    spec_file = write_spec(tmp_path, "two-nodes", storage)
    done = tuner_cmd("run", str(spec_file), "--address", cluster.address)
    assert done.returncode == 0, done.stderr[-3000:]

    results_dir = storage / "two-nodes"
    rows = pd.read_parquet(results_dir / "trials.parquet")
    assert rows["node_id"].nunique() == 2  # trials ran on both nodes
    summary = pd.read_csv(results_dir / "summary.csv")
    assert len(summary) == 4 and (summary["status"] == "completed").all()
    for trial_id in summary["trial_id"]:  # every trial's checkpoints landed in shared storage
        assert list((results_dir / f"trial-{trial_id}").glob("checkpoint_*/checkpoint.pt"))
    assert (results_dir / "best" / "checkpoint.pt").is_file()
    assert (results_dir / "best_config.yaml").is_file()


def test_node_local_storage_is_refused_before_anything_runs(
    cluster: Cluster, tmp_path: Path
) -> None:
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare -m (root) to give the second node its own mount of the folder")
    storage = tmp_path / "local-only"
    storage.mkdir()
    # The second node sees its own empty tmpfs at the same path: a node-local folder.
    ray_start = f"{sys.executable} -m ray.scripts.scripts start --block --num-cpus=1"
    worker = subprocess.Popen(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            f"mount -t tmpfs tmpfs {storage} && exec {ray_start} --address={cluster.address}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: stopped below by signal, not by `ray stop`
    )
    try:
        deadline = time.monotonic() + 120
        while alive_nodes(cluster.address) < 2:
            assert time.monotonic() < deadline and worker.poll() is None, "worker never joined"
            time.sleep(2)
        spec_file = write_spec(tmp_path, "local", storage)
        refused = tuner_cmd("run", str(spec_file), "--address", cluster.address)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    assert refused.returncode == 1, refused.stderr[-3000:]
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("error: storage path") and "not visible from 1 of 2 nodes" in last
    assert "Traceback" not in refused.stderr
    assert list(storage.iterdir()) == []  # no results folder, no probe marker left behind


@contextlib.contextmanager
def worker_node(address: str, env: dict[str, str]) -> Iterator[None]:
    """A second node from `ray start --block` with its own environment (what another machine
    would have), stopped by signal to its own process group, never by `ray stop`."""
    ray_start = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--num-cpus=1"]
    worker = subprocess.Popen(
        [*ray_start, f"--address={address}"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while alive_nodes(address) < 2:
            assert time.monotonic() < deadline and worker.poll() is None, "worker never joined"
            time.sleep(2)
        yield
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)


def test_a_search_on_a_bucket_spreads_over_nodes_with_their_own_caches(
    s3: S3, cluster: Cluster, tmp_path: Path
) -> None:
    """The second node has its own cache folder, as another machine would: its trials write
    to the bucket, and a retraining seed it runs is published from its own working copy."""
    spec_file = write_spec(tmp_path, "two-nodes-s3", s3.uri("searches"))
    raw = yaml.safe_load(spec_file.read_text())
    raw["retrain"] = {"seeds": 2}
    # Trials long enough (~1 s an epoch) for the second node's trial actor to start before the
    # first node's actor, reused trial after trial, has run them all (seen with a fresh venv:
    # 4 trials of 0.1 s epochs all ran on one node).
    raw["base"]["dataset"]["synthetic_train_size"] = 6000
    spec_file.write_text(yaml.safe_dump(raw))
    with worker_node(cluster.address, {"HPSEARCH_CACHE": str(tmp_path / "other-machine")}):
        done = tuner_cmd("run", str(spec_file), "--address", cluster.address)
    assert done.returncode == 0, done.stderr[-3000:]
    keys = s3.keys("searches/two-nodes-s3")
    for seed in (0, 1):
        assert f"best/runs/seed-{seed}/outcome.json" in keys
    assert "best/checkpoint.pt" in keys and "best_config.yaml" in keys
    rows = pd.read_parquet(io.BytesIO(read_bytes(s3.uri("searches/two-nodes-s3/trials.parquet"))))
    assert rows["node_id"].nunique() == 2  # trials ran on both nodes
    # A seed ran on the other node (one CPU each: the two seeds run side by side), in that
    # node's working copy; the driver fetched it from the bucket to export.
    other = list((tmp_path / "other-machine").glob("results/*/two-nodes-s3/best/runs/seed-*"))
    assert len(other) == 1 and (other[0] / "outcome.json").is_file()


def test_a_node_that_cannot_reach_the_bucket_is_named_before_anything_runs(
    s3: S3, cluster: Cluster, tmp_path: Path
) -> None:
    with worker_node(cluster.address, {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}):
        spec_file = write_spec(tmp_path, "blind", s3.uri("searches"))
        refused = tuner_cmd("run", str(spec_file), "--address", cluster.address)
    assert refused.returncode == 1, refused.stderr[-3000:]
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: storage path {s3.uri('searches', 'blind')} is not visible")
    assert "from 1 of 2 nodes" in last and "Traceback" not in refused.stderr
    assert s3.keys() == []  # no results, no probe marker left behind
