"""Driving a real `python -m tuner` process and stopping it at a chosen moment of its run.

Shared by tests/tuner/stages/test_stages.py (a few moments) and `bench/faults/kill_anywhere.py` (the sweep).
A moment is a predicate on the results folder (what the run has written so far) or a delay.
The driver runs in its own process group, so a SIGKILL takes Ray's processes with it, as a
node failure or an OOM kill of the job would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainable.vocab import FINAL
from tuner.results.layout import ResultsDir
from tuner.stages.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = ("best_config.yaml", "best/test_summary.json", "trials.parquet", "summary.csv")


def tuner_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuner", *args, "--num-cpus", "2", "--no-dashboard"]


def finished_trials(results_dir: Path) -> dict[str, list[float]]:
    """trial_id -> val_loss by epoch, for trials whose trainer reported its final epoch."""
    out = {}
    for result_file in results_dir.glob("trial-*/result.json"):
        try:
            text = result_file.read_text()
        except OSError:
            continue
        rows = [json.loads(line) for line in text.splitlines() if line.strip().endswith("}")]
        if rows and rows[-1].get(FINAL):
            out[str(rows[-1]["trial_id"])] = [r["val_loss"] for r in rows]
    return out


def _stages(results_dir: Path) -> dict[str, object]:
    return Manifest(ResultsDir(results_dir).manifest).stages()


def _retraining(results_dir: Path) -> bool:
    run = ResultsDir(results_dir).retrain_run
    seeds = [run(0), run(1)]
    return any((s / "last" / "checkpoint.pt").is_file() for s in seeds) and not all(
        ResultsDir.run_outcome(s).is_file() for s in seeds
    )


# Named moments across one run, in the order a run reaches them.
MOMENTS: dict[str, Callable[[Path], bool]] = {
    "first trial checkpoint": lambda d: any(d.glob("trial-*/checkpoint_*")),
    "first trial finished": lambda d: bool(finished_trials(d)),
    "search recorded done": lambda d: "search" in _stages(d),
    "retraining a seed": _retraining,
    "a seed recorded done": lambda d: any(k.startswith("retrain/") for k in _stages(d)),
}


def start_run(spec_file: Path) -> subprocess.Popen[str]:
    """`tuner run SPEC` in its own process group, stderr kept for its last line."""
    return subprocess.Popen(
        tuner_cmd("run", str(spec_file)),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_until(
    proc: subprocess.Popen[str],
    results_dir: Path,
    reached: Callable[[Path], bool],
    timeout_s: float,
) -> None:
    """Poll the results folder until `reached` holds, the run ends or the time is up."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline and not reached(results_dir):
        time.sleep(0.2)


@dataclass
class Stopped:
    moment: str
    returncode: int  # the driver's exit status, whether or not the signal reached it
    stderr: str
    finished_before: dict[str, list[float]]
    folder_existed: bool
    exit_s: float | None = None  # seconds from the signal to the driver's exit
    ended_early: bool = False  # the run had ended before the moment came: no signal was sent

    def skip_reason(self) -> str | None:
        """Why a test may skip (the run finished cleanly before the moment); raises when the
        run ended early by failing, so a crash is never mistaken for a missed moment."""
        if not self.ended_early:
            return None
        if self.returncode != 0:
            tail = self.stderr.strip().splitlines()[-20:]
            raise AssertionError(
                f"the run failed (exit {self.returncode}) before '{self.moment}':\n"
                + "\n".join(tail)
            )
        return f"the run finished cleanly before '{self.moment}' was seen"


def run_until(
    spec_file: Path,
    results_dir: Path,
    moment: str,
    sig: int = signal.SIGKILL,
    timeout_s: float = 300,
) -> Stopped:
    """Start `tuner run`, wait for the moment (a name in MOMENTS, or `after <s>s`), send `sig`
    to the driver's whole process group (SIGKILL) or to the driver alone (other signals, as a
    scheduler's grace-period signal reaches the job's main process)."""
    proc = start_run(spec_file)
    if moment.startswith("after "):
        delay = float(moment.removeprefix("after ").removesuffix("s"))
        t0 = time.monotonic()
        reached: Callable[[Path], bool] = lambda _d: time.monotonic() - t0 >= delay  # noqa: E731
    else:
        reached = MOMENTS[moment]
    wait_until(proc, results_dir, reached, timeout_s)
    before = finished_trials(results_dir)
    if proc.poll() is not None:
        stderr = proc.communicate()[1]
        return Stopped(
            moment, proc.returncode, stderr, before, results_dir.exists(), ended_early=True
        )
    t_sig = time.monotonic()
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    exit_s = time.monotonic() - t_sig
    if sig == signal.SIGKILL:
        _reap_group(proc.pid)
    return Stopped(moment, proc.returncode, stderr, before, results_dir.exists(), exit_s)


def _reap_group(pgid: int) -> None:
    """Wait until no process of the killed group is left (Ray's raylet and workers)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def recover(
    spec_file: Path, results_dir: Path, timeout_s: float = 600
) -> subprocess.CompletedProcess[str]:
    """What a user does next: resume the folder, or run again if none was made; if the kill
    came after the run had finished (during Ray's shutdown), `show` it."""
    if not results_dir.exists():
        cmd = tuner_cmd("run", str(spec_file))
    elif Manifest(ResultsDir(results_dir).manifest).status == "finished":
        cmd = [sys.executable, "-m", "tuner", "show", str(results_dir)]
    else:
        cmd = tuner_cmd("resume", str(results_dir))
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)


def check_complete(results_dir: Path, finished_before: dict[str, list[float]]) -> list[str]:
    """What is wrong with a resumed run's outputs (empty: nothing)."""
    problems = [f"missing {name}" for name in OUTPUTS if not (results_dir / name).is_file()]
    if problems:
        return problems
    manifest = Manifest(ResultsDir(results_dir).manifest)
    if manifest.status != "finished":
        problems.append(f"manifest status {manifest.status}")
    rows = pd.read_parquet(results_dir / "trials.parquet")
    for trial_id, losses in finished_before.items():
        kept = rows[rows["trial_id"].astype(str) == trial_id].sort_values("epoch")
        if kept["val_loss"].tolist() != losses:
            problems.append(f"trial {trial_id} changed: {losses} -> {kept['val_loss'].tolist()}")
    return problems
