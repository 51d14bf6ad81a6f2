"""`pip install .` gives the two console commands, equivalent to `python -m tuner` and
`python -m trainable`, running from the installed package rather than from this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_install_gives_hpsearch_tune_and_hpsearch_train(tmp_path: Path) -> None:
    # Built from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    for package in ("trainable", "tuner"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    # No index: the pinned dependencies are this environment's; only the package is installed.
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    wheels = list((tmp_path / "dist").glob("hpsearch-*.whl"))
    assert len(wheels) == 1
    site = tmp_path / "site"
    install = [*pip, "install", "--no-deps", "--no-index", "--target", site, wheels[0]]
    subprocess.run(install, check=True, capture_output=True, timeout=300)

    env = {**os.environ, "PYTHONPATH": str(site)}
    where = "import tuner, trainable; print(tuner.__file__); print(trainable.__file__)"
    imported = subprocess.run(
        [sys.executable, "-c", where], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    files = imported.stdout.splitlines()
    assert len(files) == 2 and all(f.startswith(str(site)) for f in files), imported.stderr

    spec = REPO / "search_spaces" / "quick.yaml"
    tune = subprocess.run(
        [site / "bin" / "hpsearch-tune", "validate", spec],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tune.returncode == 0 and f"{spec}: ok (" in tune.stdout, tune.stderr[-2000:]
    train = subprocess.run(
        [site / "bin" / "hpsearch-train", "train", "--config", tmp_path / "absent.yaml"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert train.returncode == 2  # the trainer's own one-line config error and exit code
    for command in ("hpsearch-tune", "hpsearch-train"):
        shown = subprocess.run(
            [site / "bin" / command, "--help"], env=env, capture_output=True, text=True
        )
        assert shown.stdout.startswith(f"usage: {command} "), shown.stdout[:200]
        version = subprocess.run(
            [site / "bin" / command, "--version"], env=env, capture_output=True, text=True
        )
        assert version.stdout.strip() == "hpsearch 0.1.0", version.stdout + version.stderr
    assert (
        train.stderr.strip()
        == f"error: config file not found: {tmp_path / 'absent.yaml'} (pass an existing YAML file)"
    )
    # The example specs and configs ship inside the package, found by name from anywhere.
    by_name = subprocess.run(
        [site / "bin" / "hpsearch-tune", "validate", "quick"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert by_name.returncode == 0, by_name.stderr[-2000:]
    assert by_name.stdout.startswith(str(site / "tuner" / "examples" / "quick.yaml") + ": ok (")
    unknown = subprocess.run(
        [site / "bin" / "hpsearch-train", "train", "--config", "cifar10_nonet"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert unknown.returncode == 2 and unknown.stderr.strip() == (
        "error: no file 'cifar10_nonet', and no example of that name: pass a YAML file, or one "
        "of cifar10_fastnet, cifar10_fastnet_adamw, cifar10_smallnet"
    )
