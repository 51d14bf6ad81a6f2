"""Shared fixtures: tiny synthetic configs that train in about a second on a CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.support.services import S3_CREDENTIALS, free_port, start_s3_server
from trainable.config import TrainConfig, build_config, deep_merge

REPO = Path(__file__).resolve().parents[1]
CIFAR_JPEG = REPO.parent / "shared" / "datasets" / "cifar10-jpeg"

TINY: dict[str, Any] = {
    "dataset": {
        "name": "synthetic",
        "num_classes": 4,
        "image_size": 16,
        "synthetic_train_size": 640,
        "synthetic_test_size": 200,
        "val_fraction": 0.2,
    },
    "model": {"name": "smallnet", "width": 8, "depth": 2, "dropout": 0.0},
    "batch_size": 64,
    "eval_batch_size": 256,
    "epochs": 3,
    "device": "cpu",
    "precision": "fp32",
}


def run_cli(
    module: str, *args: str | Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE ARGS...` from the repository root, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


class Interrupted(Exception):
    """What `stop_at` raises: the run is killed as its report of that epoch returns."""


def stop_at(epoch: int) -> Callable[[dict[str, float], Path | None], None]:
    """A `train()` report that kills the run at `epoch` (run it under
    `pytest.raises(Interrupted)`, then resume from the run's `last/`)."""

    def report(metrics: dict[str, float], _dir: Path | None) -> None:
        if metrics["epoch"] == epoch:
            raise Interrupted

    return report


@pytest.fixture
def tiny_config() -> Callable[..., TrainConfig]:
    """`tiny_config(epochs=2, optimizer={"lr": 0.01})`: TINY with nested overrides."""

    def make(**overrides: Any) -> TrainConfig:
        return build_config(deep_merge(TINY, overrides))

    return make


# Every airbench94 element of configs/cifar10_fastnet.yaml, on TINY's data and a width-8 fastnet.
RECIPE: dict[str, Any] = {
    "model": {
        "name": "fastnet",
        "width": 8,
        "depth": 2,
        "dropout": 0.0,
        "stem": "whiten",
        "whiten": {"bias_epochs": 1},
        "conv_init": "dirac",
        "bn_momentum": 0.4,
        "bn_eps": 1e-12,
        "bn_weight_frozen": True,
    },
    "optimizer": {"name": "sgd", "bn_bias_lr_scale": 64.0},
    "schedule": {"name": "triangular"},
    "lookahead": {"enabled": True},
    "augment": {"crop_padding": 2, "pad_mode": "reflect", "hflip_mode": "alternating"},
    "label_smoothing": 0.2,
    "tta_hflip": True,
    "tta_translate": True,
}


@pytest.fixture
def recipe_config() -> Callable[..., TrainConfig]:
    """`recipe_config(epochs=2)`: TINY trained with the whole airbench94 recipe."""

    def make(**overrides: Any) -> TrainConfig:
        return build_config(deep_merge(deep_merge(TINY, RECIPE), overrides))

    return make


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decoded-dataset caches go to a per-session temp folder unless a test opts into the real one.
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`tmpfs("1m")`: a small disk of its own, mounted under tmp_path (skips without root)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@dataclass(frozen=True)
class S3:
    """A bucket of its own on the tests' S3 server, and the environment that reaches it (the
    standard AWS variables, as a user would set them)."""

    endpoint: str
    bucket: str
    env: dict[str, str]

    def uri(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])

    def keys(self, prefix: str = "") -> list[str]:
        import pyarrow.fs

        fs = pyarrow.fs.S3FileSystem(endpoint_override=self.endpoint, region="us-east-1")
        where = f"{self.bucket}/{prefix}".rstrip("/")
        infos = fs.get_file_info(
            pyarrow.fs.FileSelector(where, recursive=True, allow_not_found=True)
        )
        return sorted(i.path[len(where) + 1 :] for i in infos if i.type == pyarrow.fs.FileType.File)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    proc, endpoint = start_s3_server()
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A fresh bucket; this process and its children reach it through AWS_* variables."""
    import pyarrow.fs

    for key, value in {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(key, value)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    fs = pyarrow.fs.S3FileSystem(
        endpoint_override=s3_server, region="us-east-1", allow_bucket_creation=True
    )
    fs.create_dir(bucket)
    return S3(s3_server, bucket, dict(os.environ))


@pytest.fixture
def denying_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A second S3 server that checks credentials (moto's IAM enforcement from the first
    request): the tests' keys are unknown to it, as stale or wrong keys would be."""
    proc, endpoint = start_s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    for key, value in {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _default_mlflow_server() -> str:
    """Where `make mlflow-server` puts it (the Makefile's path, keyed by the pin file's hash)."""
    import hashlib

    pins = (REPO / "requirements-mlflow-server.txt").read_bytes()
    digest = hashlib.sha256(pins).hexdigest()[:16]
    return str(Path.home() / ".cache" / "hpsearch" / f"mlflow-server-{digest}" / "bin" / "mlflow")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MLflow's own tracking server on 127.0.0.1: a SQLite backend store and a local artifact
    root, as a team's server would have (a real server, not a mock of our calls)."""
    server = os.environ.get("HPSEARCH_MLFLOW_SERVER") or _default_mlflow_server()
    if not Path(server).is_file():
        pytest.fail(f"no MLflow server at {server}: run 'make mlflow-server' (make test does)")
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = subprocess.Popen(
        [
            *(server, "server", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", "1"),
            *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
            *("--artifacts-destination", str(root / "artifacts")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "server.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    import urllib.request

    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        log = (root / "server.log").read_text()[-2000:]
        pytest.fail(f"the MLflow server did not start within 120 s:\n{log}")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
