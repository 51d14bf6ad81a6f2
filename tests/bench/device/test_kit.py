"""bench/device/kit.py: the offline kit for the GPU host, built here and run from a host-like
Python that has only the GPU image's packages (issue #29)."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

from bench.device import kit
from bench.support.specs import tiny_spec

REPO = Path(__file__).resolve().parents[3]
MiB = 2**20
# What travels with one device command (the device tool's limit).
CARRY_LIMIT = 64 * MiB
# The data: the CIFAR-10 JPEG copy as tar.xz, 18.6 MB when it was packed for the H200 session
# (BENCHMARKS.md, "GPU"); the kit must leave that much room.
DATA_BYTES = 19 * MiB


def test_runtime_requirements_are_the_pins_above_the_dev_marker() -> None:
    reqs = kit.runtime_requirements(REPO / "requirements.txt")
    names = {kit.normalise(r.split("[")[0].split("==")[0]) for r in reqs}
    assert "ray[tune]==2.60.0" in reqs  # headless: the dashboard's extra stays behind
    assert {"optuna", "pydantic", "pyyaml"} <= names
    assert not names & {"torch", "torchvision", "optuna-dashboard"}  # the host's, or a viewer
    assert not names & {"pytest", "ruff", "mypy", "moto"}  # tooling is below the marker
    assert all("==" in r for r in reqs)  # pinned, so the kit is what CI tested


def test_host_list_and_the_filter() -> None:
    host = kit.host_packages()
    assert {"torch", "numpy", "pandas", "pyarrow"} <= host
    assert not host & {"ray", "optuna", "pydantic"}  # what the kit exists to carry
    wheels = [Path("ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl"),
              Path("numpy-2.4.6-cp312-cp312-manylinux_2_27_x86_64.whl"),
              Path("PyYAML-6.0.4-cp312-cp312-manylinux_2_17_x86_64.whl")]  # fmt: skip
    assert kit.missing_on_host(wheels, host) == [wheels[0]]
    assert kit.wheel_dist(wheels[2]) == ("pyyaml", "6.0.4")


def _fake_kit(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("VALUE = 7\n")
    out = tmp_path / "kit"
    out.mkdir()
    parts = kit.pack(src, out, kit.PART_PREFIX, part_bytes=64, preset=0)
    assert len(parts) > 1  # split: the installer must join them in order
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    (out / kit.MANIFEST).write_text(json.dumps({"python": version, "parts": parts}))
    return out


def test_install_joins_parts_and_is_idempotent(tmp_path: Path) -> None:
    built = _fake_kit(tmp_path)
    target = tmp_path / "site"
    assert kit.install(built, target) is True
    assert (target / "pkg" / "__init__.py").read_text() == "VALUE = 7\n"
    assert kit.install(built, target) is False  # a second command finds the first one's work
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kit", "site", "src"]  # no leftovers


def test_install_refuses_a_damaged_part_or_another_python(tmp_path: Path) -> None:
    built = _fake_kit(tmp_path)
    part = built / f"{kit.PART_PREFIX}00"
    part.write_bytes(b"x" + part.read_bytes()[1:])
    with pytest.raises(kit.KitError, match="damaged"):
        kit.install(built, tmp_path / "site")
    assert not (tmp_path / "site").exists()  # nothing half-written
    manifest = json.loads((built / kit.MANIFEST).read_text())
    (built / kit.MANIFEST).write_text(json.dumps({**manifest, "python": "2.7"}))
    assert kit.main(["install", "--kit", str(built), "--target", str(tmp_path / "s")]) == 2


@pytest.mark.slow
def test_the_gpu_kit_fits_one_command_beside_the_data(tmp_path: Path) -> None:
    """The real kit, for the host's CPython 3.12, as a device command would carry it."""
    manifest = kit.build(tmp_path, "3.12", part_mb=60, preset=9)
    packed = sum(p["bytes"] for p in manifest["parts"])
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    repo_bytes = sum((REPO / f).stat().st_size for f in tracked.stdout.decode().split("\0") if f
                     and (REPO / f).is_file())  # fmt: skip
    assert packed + DATA_BYTES + repo_bytes < CARRY_LIMIT, (packed, repo_bytes)
    carried = {"ray", "optuna", "pydantic", "pydantic-core", "sqlalchemy", "airbench"}
    assert carried <= set(manifest["dists"])
    assert not set(manifest["dists"]) & kit.host_packages()
    assert set(manifest["pruned"]) == set(kit.PRUNE)  # each PRUNE entry exists in Ray 2.60


def _host_python(root: Path) -> Path:
    """A venv that sees only the GPU image's packages (those installed here, linked)."""
    venv.create(root, with_pip=False)
    site = next(root.glob("lib/python3*/site-packages"))
    host = kit.host_packages()
    for dist in md.distributions():
        if kit.normalise(dist.metadata["Name"]) not in host:
            continue
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            src = Path(str(dist.locate_file(top)))
            if src.exists() and not (site / top).exists():
                (site / top).symlink_to(src)
    return root / "bin" / "python"


@pytest.mark.slow
def test_a_search_runs_from_the_unpacked_kit_on_a_host_without_ray(tmp_path: Path) -> None:
    """Built for this Python by the same code, installed by the stdlib installer into a clean
    folder, and run by a Python that has the GPU image's packages only."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    kit.build(tmp_path / "kit", here, part_mb=60, preset=0)
    target = tmp_path / "opt" / "kit"
    python = _host_python(tmp_path / "host")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    bare = subprocess.run([python, "-c", "import ray"], capture_output=True, env=env)
    assert bare.returncode != 0  # the host really lacks Ray: the kit is what runs the search

    installer = [str(python), "-m", "bench.device.kit", "install", "--kit", str(tmp_path / "kit")]
    done = subprocess.run([*installer, "--target", str(target)], cwd=REPO, env=env, text=True,
                          capture_output=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    env["PYTHONPATH"] = f"{target}{os.pathsep}{REPO}"
    spec = tiny_spec("kit", str(tmp_path / "results"), num_samples=4)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    cmd = [str(python), "-m", "tuner", "run", str(tmp_path / "spec.yaml"), "--num-cpus", "2"]
    run = subprocess.run(cmd, cwd=REPO, env=env, text=True, capture_output=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "Ray dashboard: off (ray[default] is not installed here)" in run.stdout
    summary = json.loads((tmp_path / "results" / "kit" / "best" / "test_summary.json").read_text())
    assert 0.0 <= summary["test_accuracy_mean"] <= 1.0
