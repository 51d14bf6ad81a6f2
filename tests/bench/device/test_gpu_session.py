"""bench/device/gpu_session.sh, checked on the CPU: its syntax, the searches it runs (their
specs with its overrides validate), and the benchmarks it calls parse its flags and refuse
without a GPU in one line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from bench.device import airbench, packing
from tuner import cli

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "bench" / "device" / "gpu_session.sh"


def _searches() -> list[tuple[str, list[str]]]:
    """(spec, its --set overrides) for each `tuner run` in the script."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    runs = re.findall(r"-m tuner run (search_spaces/\S+)([^\n]*)", text)
    return [(spec, re.findall(r"--set (\S+)", rest)) for spec, rest in runs]


def test_the_script_parses() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    subprocess.run([bash, "-n", str(SCRIPT)], check=True)


def test_its_searches_are_the_shipped_specs_and_validate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    searches = _searches()
    assert [s for s, _ in searches] == ["search_spaces/default.yaml", "search_spaces/fast.yaml"]
    for spec, overrides in searches:
        args = ["validate", str(REPO / spec)]
        for o in overrides:
            args += ["--set", o]
        assert cli.main(args) == 0, capsys.readouterr()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is the no-GPU path")
def test_its_benchmarks_refuse_without_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert packing.main(["--data-root", "nowhere", "--concurrency", "1,2,4,8"]) == 2
    assert airbench.main(["--data-root", "nowhere", "--runs", "2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all("CUDA" in ln for ln in lines)
