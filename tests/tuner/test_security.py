"""Security properties of a search: no secret in results or output, no world-writable results,
checkpoints only ever loaded with `weights_only=True`. (Dashboard binding and token: test_dashboard.)"""

from __future__ import annotations

import ast
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.tuner.conftest import tiny_spec

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_results_hold_no_secret_and_nothing_world_writable(tmp_path: Path) -> None:
    raw = tiny_spec("secure", str(tmp_path / "results"), num_samples=2)
    raw["scheduler"] = {"kind": "fifo", "metric": "val_loss", "mode": "min", "max_t": 2}
    raw["retrain"] = {"seeds": 1}
    spec_file = tmp_path / "secure.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    done = subprocess.run(
        [sys.executable, "-m", "tuner", "run", str(spec_file), "--num-cpus", "2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        preexec_fn=lambda: os.umask(0),  # the most permissive umask a user could have
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert token not in done.stdout + done.stderr
    assert "token authentication on" in done.stdout  # the dashboard says where, not what

    results_dir = tmp_path / "results" / "secure"
    paths = [results_dir, *results_dir.rglob("*")]
    assert len(paths) > 20
    for path in paths:
        assert not path.lstat().st_mode & stat.S_IWOTH, f"world-writable: {path}"
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"token written to {path}"


def test_every_torch_load_uses_weights_only() -> None:
    calls = []
    for source in [
        *REPO.glob("trainable/**/*.py"),
        *REPO.glob("tuner/**/*.py"),
        *REPO.glob("bench/**/*.py"),
    ]:
        for node in ast.walk(ast.parse(source.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                kwargs = {k.arg: k.value for k in node.keywords}
                weights_only = kwargs.get("weights_only")
                assert isinstance(weights_only, ast.Constant) and weights_only.value is True, (
                    f"{source.name}:{node.lineno} torch.load without weights_only=True"
                )
                calls.append(f"{source.name}:{node.lineno}")
    assert calls  # the checkpoint loader is among them
