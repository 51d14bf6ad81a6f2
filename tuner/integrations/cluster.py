"""Connecting to Ray: a local one started here, or an existing cluster (`--address`).

Also what must hold before a search starts, checked in seconds instead of discovered after an
hour: the resources trials ask for exist (Ray only warns and waits forever otherwise), and on a
multi-node cluster every node sees the results folder (Tune writes checkpoints from the node a
trial runs on, so a node-local path silently scatters them across machines).

The dashboard binds to 127.0.0.1 unless asked otherwise: it can submit jobs, i.e. run code.
Ray's token authentication stays on; we print where the token is, never the token.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainable.data.datasets import Splits
from trainable.data.datasize import require_object_store
from trainable.data.mapped import in_memory_bytes
from trainable.errors import DeviceError, UserError, storage_error
from trainable.files import storage
from tuner import compat
from tuner.spec import SearchSpec

LOOPBACK = ("127.0.0.1", "localhost", "::1")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start Ray in this process
    num_cpus: int | None = None  # local only; default all cores
    dashboard: bool | None = False  # None: on where Ray's dashboard is installed (ray[default])
    dashboard_host: str = "127.0.0.1"


def _runtime_env() -> dict[str, Any]:
    """On an existing cluster, ship this project's packages to every worker (Ray uploads them
    once per job), so nodes need the same pinned libraries but not a copy of this checkout."""
    return {"py_modules": [str(PROJECT_ROOT / "trainable"), str(PROJECT_ROOT / "tuner")]}


def ensure_ray(opts: RayOptions) -> bool:
    """Start (or join) Ray unless already connected; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    local = opts.address is None
    dashboard = _dashboard_wanted(opts.dashboard) if local else False
    if local and dashboard and opts.dashboard_host not in LOOPBACK:
        print(
            f"warning: the Ray dashboard will listen on {opts.dashboard_host}: anyone who can "
            "reach that port and holds the token can run code on this machine; prefer "
            "127.0.0.1 and an SSH tunnel (ssh -L 8265:127.0.0.1:8265 HOST)",
            file=sys.stderr,
            flush=True,
        )
    # Starting options apply to a Ray started here; an existing cluster keeps its own.
    start: dict[str, Any] = (
        {
            "num_cpus": opts.num_cpus,
            "include_dashboard": dashboard,
            "dashboard_host": opts.dashboard_host,
        }
        if local
        else {"runtime_env": _runtime_env()}
    )
    try:
        context = ray.init(
            address=opts.address, log_to_driver=True, configure_logging=False, **start
        )
    except ConnectionError as err:
        raise UserError(
            f"cannot reach a Ray cluster at --address {opts.address} ({err}); start one with "
            "'ray start --head' or check the address"
        ) from err
    if context.dashboard_url and (dashboard or not local):
        print(dashboard_banner(f"http://{context.dashboard_url}"), flush=True)
    return True


def _dashboard_wanted(asked: bool | None) -> bool:
    """Asked for and not installed is an error; by default it is on where installed."""
    if asked is False:
        return False
    missing = compat.dashboard_missing()
    if missing is None:
        return True
    if asked:
        raise UserError(
            f"the Ray dashboard is not installed ({missing}): pip install 'ray[default]', "
            "or run with --no-dashboard"
        )
    print("Ray dashboard: off (ray[default] is not installed here)", flush=True)
    return False


def token_location() -> str:
    """Where the dashboard's token lives, in words; never the token itself."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "the RAY_AUTH_TOKEN environment variable"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return f"{path} (or run: ray get-auth-token)"


def auth_mode(url: str) -> str:
    """The dashboard's own answer (`token` or `disabled`); `unknown` if it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/api/authentication_mode", timeout=5) as response:
            return str(json.load(response).get("authentication_mode", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def dashboard_banner(url: str) -> str:
    mode = auth_mode(url)
    if mode == "token":
        how = f"token authentication on: paste the token from {token_location()}"
    elif mode == "disabled":
        how = "token authentication OFF (RAY_AUTH_MODE=disabled): keep it on loopback"
    else:
        how = "could not ask it for its authentication mode"
    return f"Ray dashboard: {url}  ({how})"


@contextlib.contextmanager
def ray_session(opts: RayOptions) -> Iterator[None]:
    """Ray for the duration of a command; shut down only if this command started it."""
    started = ensure_ray(opts)
    try:
        yield
    finally:
        if started:
            import ray

            _stop_forwarding_worker_output()
            ray.shutdown()


def _stop_forwarding_worker_output() -> None:
    """Before every shutdown, after an error or a finished run alike. Shutting down kills the
    workers still alive (a reused trial actor, after a resume) with SIGTERM, and one caught
    inside a weakref callback prints Ray's 'Exception ignored ... SystemExit' traceback through
    the driver: below the error's one line, or below a finished run's outcome (seen once in
    test_bucket's resume). What the workers printed before has been shown already. Ray has no public
    switch for this: the handler's name is the one Ray itself removes at shutdown."""
    compat.stop_forwarding_worker_output()


def alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [n for n in ray.nodes() if n["Alive"]]


def check_resources(spec: SearchSpec) -> None:
    """Refuse requests the cluster can never satisfy: Ray itself only warns and waits forever."""
    import ray

    total = ray.cluster_resources()
    if spec.resources.gpu > 0 and total.get("GPU", 0) == 0:
        raise DeviceError(
            f"each trial asks for {spec.resources.gpu} GPU but this Ray cluster has none; "
            "run search_spaces/quick.yaml, or pass --cpu to run this search on CPUs"
        )
    nodes = alive_nodes()
    per_node_cpus = max((n["Resources"].get("CPU", 0) for n in nodes), default=0)
    if spec.resources.cpus > per_node_cpus:
        raise DeviceError(
            f"each trial asks for resources.cpus={spec.resources.cpus} but the largest node has "
            f"{per_node_cpus:g} CPUs; lower resources.cpus"
        )
    per_node_gpus = max((n["Resources"].get("GPU", 0) for n in nodes), default=0)
    if spec.resources.gpu > per_node_gpus:
        raise DeviceError(
            f"each trial asks for {spec.resources.gpu} GPUs but the largest node has "
            f"{per_node_gpus:g}; lower resources.gpu"
        )
    r = spec.retrain
    if r.cpus is not None and r.cpus > per_node_cpus:
        raise DeviceError(
            f"each retraining seed asks for retrain.cpus={r.cpus:g} but the largest node has "
            f"{per_node_cpus:g} CPUs; lower retrain.cpus"
        )
    if r.gpu is not None and r.gpu > per_node_gpus:
        raise DeviceError(
            f"each retraining seed asks for retrain.gpu={r.gpu:g} but the largest node has "
            f"{per_node_gpus:g} GPUs; lower retrain.gpu, or pass --cpu"
        )


def _sees_marker(path: str, token: str) -> bool:
    try:
        return storage.read_bytes(path) == token.encode()
    except (OSError, UserError):
        return False


def check_shared_storage(storage_root: str) -> None:
    """On more than one node, every node must see `storage_root` (a folder, or a bucket URI
    through the node's own credentials and endpoint): write a marker there and ask one
    zero-CPU task pinned to each node to read it back."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = alive_nodes()
    if len(nodes) < 2:
        return
    token = uuid.uuid4().hex
    marker = storage.join(storage_root, f".hpsearch-storage-check-{token}")
    storage.write_bytes(marker, token.encode())
    try:
        probe = ray.remote(num_cpus=0)(_sees_marker)
        refs = {
            n["NodeManagerAddress"] + f" (node {n['NodeID'][:8]})": probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(marker), token)
            for n in nodes
        }
        blind = [where for where, ref in refs.items() if not ray.get(ref, timeout=120)]
    finally:
        storage.delete(marker)
    if blind:
        raise UserError(
            f"storage path {storage_root} is not visible from {len(blind)} of {len(nodes)} nodes "
            f"({', '.join(blind)}): on a multi-node cluster put results on a folder shared by "
            "every node at the same path (e.g. NFS) or in a bucket every node can reach with "
            "its credentials (s3://...), via --storage-path"
        )


@contextlib.contextmanager
def user_errors_from_ray() -> Iterator[None]:
    """A user error or a storage error raised inside a Ray task arrives wrapped in a
    RayTaskError whose text is the remote traceback; re-raise the original, so the command
    prints its one line (and `--debug` still shows where it came from)."""
    from ray.exceptions import RayTaskError

    try:
        yield
    except RayTaskError as err:
        cause = err.cause
        if isinstance(cause, UserError) or storage_error(cause) is not None:
            raise cause from err
        raise


def share_data(splits: Splits) -> Any:
    """`ray.put` the decoded splits once for every trial, after checking they fit this node's
    object store: past it Ray spills to disk and its memory monitor starts killing trials.
    An image folder's splits stay in its decode cache: they travel as row numbers, and each
    trial maps the cache on its own node (`trainable.data.mapped`)."""
    import ray

    parts = [splits.train, splits.val, splits.test]
    nbytes = sum(in_memory_bytes(p.images) + p.labels.nbytes for p in parts)
    here = ray.get_runtime_context().get_node_id()
    node = next(n for n in ray.nodes() if n["NodeID"] == here)
    require_object_store(
        nbytes, node["Resources"].get("object_store_memory", 0.0), sum(len(p) for p in parts)
    )
    return ray.put(splits)
