"""The offline kit: what an air-gapped GPU host lacks to run `tuner`, packed to travel (issue #29).

The lent GPU machines have Python 3.12 and their own torch, no Ray, no Optuna, no network, and
take at most 64 MiB of files per command. Ray's wheel alone is 79 MB. This module builds, here,
from the pinned requirements, the packages such a host lacks, installed for the host's Python,
pruned of what a headless search never loads, and packed as xz:

    python -m bench.device.kit build [--python 3.12] [--out .kit]      # here, with pip
    python3 -m bench.device.kit install --kit .kit --target /tmp/kit    # there: stdlib only
    python -m bench.device.kit data --data-root ../shared/datasets/cifar10-jpeg --out .kit

`install` and everything it calls use the standard library alone (the host has no pip index),
check every part's sha256, unpack into a temporary folder and rename it into place, and do
nothing when the target already holds this kit (so a second command finds what a first left).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HOST_LIST = Path(__file__).with_name("host_packages.txt")
MANIFEST = "kit.json"
PART_PREFIX = "site.tar.xz."
DATA_NAME = "cifar10-jpeg.tar.xz"
# manylinux tags pip matches exactly; Ray, pydantic-core, SQLAlchemy and rpds-py all ship one.
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
)
# The runtime's requirements are requirements.txt's lines above this marker (the rest is tooling).
DEV_MARKER = "# dev / test"
# Requirements the kit leaves out, each with why.
NOT_CARRIED = {
    "torch": "the host's own CUDA build, matched to its driver",
    "torchvision": "the host's own, built against its torch",
    "optuna-dashboard": "a viewer, run where the results are read",
}
# Ray's `default` extra is the dashboard and its agents; a kit search runs headless (the
# dashboard is off unless asked), so only `tune` travels.
EXTRAS = {"ray": "ray[tune]"}
# What a Tune search never loads, each with why. The kit's test runs a search from the pruned
# kit, so a removal that breaks one fails there, not on the GPU.
PRUNE = {
    "ray/jars": "Java workers",
    "ray/rllib": "reinforcement learning",
    "ray/serve": "model serving",
    "ray/llm": "LLM serving",
    "ray/workflow": "workflows",
    "ray/dashboard/client": "the dashboard's web page (the dashboard is off)",
}
# What the GPU session's benchmarks run beside tuner: airbench94 as published (an sdist on PyPI,
# pure Python; built into a wheel here).
BENCH_EXTRAS = ("airbench==0.1.8",)
# Debug and symbol tables of the three binaries a cluster starts: 30% of Ray's bytes.
STRIP = ("ray/_raylet.so", "ray/core/src/ray/gcs/gcs_server", "ray/core/src/ray/raylet/raylet")


class KitError(Exception):
    """A kit that cannot be built or installed, in one line that names the fix."""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def host_packages(path: Path = HOST_LIST) -> set[str]:
    """The distributions the GPU host already has (KINDS.md's list), normalised."""
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines())
    return {normalise(ln) for ln in lines if ln}


def runtime_requirements(requirements: Path) -> list[str]:
    """The pinned runtime lines of requirements.txt, minus NOT_CARRIED, extras trimmed."""
    reqs: list[str] = []
    for raw in requirements.read_text().splitlines():
        line = raw.strip()
        if line.startswith(DEV_MARKER):
            break
        if not line or line.startswith("#"):
            continue
        name = normalise(re.split(r"[\[=<>!~ ]", line, maxsplit=1)[0])
        if name in NOT_CARRIED:
            continue
        if name in EXTRAS:
            line = EXTRAS[name] + line[line.index("==") :]
        reqs.append(line)
    return reqs


def wheel_dist(wheel: Path) -> tuple[str, str]:
    """(normalised name, version) from a wheel's file name."""
    name, version = wheel.name.split("-")[:2]
    return normalise(name), version


def missing_on_host(wheels: Iterable[Path], host: set[str]) -> list[Path]:
    return sorted(w for w in wheels if wheel_dist(w)[0] not in host)


def _pip(python_version: str, *args: str) -> None:
    tags = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for platform in PLATFORMS:
        tags += ["--platform", platform]
    cmd = [sys.executable, "-m", "pip", *args[:1], "-q", *tags, *args[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise KitError(f"pip {args[0]} failed: {tail} (is the package index reachable?)")


def _build_wheels(wheels: Path, reqs: Sequence[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), *reqs]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise KitError(f"pip wheel {' '.join(reqs)} failed: {tail}")


def prune(site: Path) -> list[str]:
    """Remove PRUNE's folders and every __pycache__; strip STRIP's binaries. Returns what went."""
    gone = [rel for rel in PRUNE if (site / rel).exists()]
    for rel in gone:
        shutil.rmtree(site / rel)
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache)
    strip = shutil.which("strip")
    for rel in STRIP:
        if strip and (site / rel).exists():
            subprocess.run([strip, "--strip-unneeded", str(site / rel)], check=True)
    return gone


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tar_xz(src: Path, members: Sequence[str], dest: Path, preset: int) -> None:
    """`members` of `src` as one tar stream through xz (all cores) into `dest`."""
    with dest.open("wb") as sink:
        tar = subprocess.Popen(
            ["tar", "-C", str(src), "-cf", "-", *members], stdout=subprocess.PIPE
        )
        subprocess.run(["xz", f"-{preset}", "-T0", "-c"], stdin=tar.stdout, stdout=sink, check=True)
        if tar.wait() != 0:
            raise KitError(f"tar of {src} failed")


def pack(src: Path, out: Path, stem: str, part_bytes: int, preset: int) -> list[dict[str, Any]]:
    """tar | xz (all cores) into `stem.00`, `stem.01`, ... of at most part_bytes each."""
    for old in out.glob(stem + "*"):
        old.unlink()
    whole = out / (stem + "whole")
    _tar_xz(src, ["."], whole, preset)
    parts: list[dict[str, Any]] = []
    with whole.open("rb") as f:
        for i, block in enumerate(iter(lambda: f.read(part_bytes), b"")):
            part = out / f"{stem}{i:02d}"
            part.write_bytes(block)
            parts.append({"name": part.name, "bytes": len(block), "sha256": _sha256(part)})
    whole.unlink()
    return parts


def build(out: Path, python_version: str, part_mb: float, preset: int) -> dict[str, Any]:
    """Download, install for the target Python, prune, pack; write kit.json. Returns it."""
    out.mkdir(parents=True, exist_ok=True)
    reqs = runtime_requirements(REPO / "requirements.txt")
    host = host_packages()
    with tempfile.TemporaryDirectory(prefix="kit-") as tmp:
        wheels, site = Path(tmp, "wheels"), Path(tmp, "site")
        print(f"kit: resolving {len(reqs)} requirements for CPython {python_version}", flush=True)
        _pip(python_version, "download", "-d", str(wheels), *reqs)
        _build_wheels(wheels, BENCH_EXTRAS)
        carried = missing_on_host(wheels.glob("*.whl"), host)
        print(f"kit: {len(carried)} distributions the host lacks; installing", flush=True)
        _pip(python_version, "install", "--no-deps", "--no-index", "--no-compile",
             "--target", str(site), *map(str, carried))  # fmt: skip
        installed = _tree_bytes(site)
        gone = prune(site)
        pruned = _tree_bytes(site)
        print(f"kit: {installed / 2**20:.0f} MiB installed, {pruned / 2**20:.0f} MiB after "
              f"pruning; packing (xz -{preset})", flush=True)  # fmt: skip
        parts = pack(site, out, PART_PREFIX, int(part_mb * 2**20), preset)
    manifest: dict[str, Any] = {
        "python": python_version,
        "dists": dict(sorted(wheel_dist(w) for w in carried)),
        "host_has": sorted(host),
        "pruned": {rel: PRUNE[rel] for rel in gone},
        "stripped": list(STRIP),
        "installed_bytes": installed,
        "unpacked_bytes": pruned,
        "parts": parts,
        "requirements_sha256": _sha256(REPO / "requirements.txt"),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    packed = sum(p["bytes"] for p in parts)
    print(f"kit: {packed / 2**20:.1f} MiB in {len(parts)} part(s) under {out}", flush=True)
    return manifest


def pack_data(data_root: Path, out: Path, preset: int = 9) -> Path:
    """The image folder as one tar.xz (JPEG files share their headers: xz packs them ~3x)."""
    if not (data_root / "train").is_dir():
        raise KitError(f"{data_root} has no train/ folder: pass the CIFAR-10 JPEG copy's root")
    out.mkdir(parents=True, exist_ok=True)
    target = out / DATA_NAME
    tmp = target.with_suffix(".part")
    _tar_xz(data_root, ["train", "test", "PROVENANCE.md"], tmp, preset)
    tmp.replace(target)
    return target


def install(kit: Path, target: Path) -> bool:
    """Unpack the kit into target (stdlib only). False when target already holds this kit."""
    try:
        manifest = json.loads((kit / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise KitError(f"no readable {MANIFEST} in {kit}: build the kit first") from e
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if manifest["python"] != here:
        raise KitError(f"the kit is for Python {manifest['python']}, this is {here}: "
                       f"build it with --python {here}")  # fmt: skip
    stamp = target / MANIFEST
    if stamp.is_file() and json.loads(stamp.read_text())["parts"] == manifest["parts"]:
        return False
    for part in manifest["parts"]:
        path = kit / part["name"]
        if not path.is_file() or _sha256(path) != part["sha256"]:
            raise KitError(f"{path} is missing or damaged: carry the kit's parts again")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    _extract(kit, [p["name"] for p in manifest["parts"]], staging)
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return True


def _extract(kit: Path, parts: Sequence[str], dest: Path) -> None:
    read, write = os.pipe()
    if os.fork() == 0:  # the child streams the parts, in order, into the pipe
        os.close(read)
        with os.fdopen(write, "wb") as sink:
            for name in parts:
                with (kit / name).open("rb") as f:
                    shutil.copyfileobj(f, sink, 1 << 20)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as source, tarfile.open(fileobj=source, mode="r|xz") as tar:
        tar.extractall(dest, filter="data")  # refuses absolute paths and links out of dest
    os.wait()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.device.kit", description=__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="here: download, install for the host's Python, prune, pack")
    b.add_argument("--out", type=Path, default=REPO / ".kit")
    b.add_argument("--python", default="3.12", help="the host's Python (major.minor)")
    b.add_argument("--part-mb", type=float, default=60.0, help="largest part, MiB")
    b.add_argument("--xz-preset", type=int, default=9, choices=range(10))
    i = sub.add_parser("install", help="there: unpack into --target (stdlib only)")
    i.add_argument("--kit", type=Path, default=REPO / ".kit")
    i.add_argument("--target", type=Path, required=True)
    d = sub.add_parser("data", help="here: pack an image folder (train/, test/) as tar.xz")
    d.add_argument("--data-root", type=Path, required=True)
    d.add_argument("--out", type=Path, default=REPO / ".kit")
    args = p.parse_args(argv)
    try:
        if args.cmd == "build":
            build(args.out, args.python, args.part_mb, args.xz_preset)
        elif args.cmd == "install":
            fresh = install(args.kit, args.target)
            print(f"kit: {'installed into' if fresh else 'already in'} {args.target}; "
                  f"export PYTHONPATH={args.target}", flush=True)  # fmt: skip
        else:
            print(f"kit: data packed into {pack_data(args.data_root, args.out)}", flush=True)
    except KitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
