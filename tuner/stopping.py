"""Stopping a run from outside, the way Tune stops on Ctrl-C: its state saved, then resumable.

Three things stop a run early: SIGINT (Ctrl-C), SIGTERM (what Kubernetes, Slurm and spot
preemption send, about 30 s before SIGKILL) and storage that cannot take another write (a full
disk, a read-only mount). While the search stage runs, each one sets Tune's own "interrupted"
event: Tune writes its experiment state one last time and `fit()` returns, and the run ends with
the resume command and an exit code that says why (130, 143, or StorageError's). Outside the
search (data loading, retraining) a signal raises KeyboardInterrupt at once: every later stage
resumes from its own files. A second signal never waits for a state save.

Tune installs a SIGINT handler of its own in `fit()`; we turn it off
(`TUNE_DISABLE_SIGINT_HANDLER`) so that one handler sees both signals, and reach Tune's event
through the SIGUSR1 handler that Tune always installs for the same purpose.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ray.tune import Callback

from trainable.errors import storage_error

# Exit codes as a shell reports a process killed by the signal (128 + signal number).
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Stopped(KeyboardInterrupt):
    """A signal stopped the run outside Tune's state save; says which, and its exit code."""

    def __init__(self, reason: str, exit_code: int) -> None:
        super().__init__(reason)
        self.reason, self.exit_code = reason, exit_code


@dataclass
class StopState:
    """Why the run was asked to stop (None: it was not), and whether Tune's loop is running."""

    reason: str | None = None
    exit_code: int = 0
    in_search: bool = False

    def request(self, reason: str, exit_code: int, frame: FrameType | None = None) -> None:
        first = self.reason is None
        if first:
            self.reason, self.exit_code = reason, exit_code
        tune_handler = signal.getsignal(signal.SIGUSR1)
        if first and self.in_search and callable(tune_handler):
            tune_handler(signal.SIGUSR1, frame)  # Tune's event: save state, return from fit()
            return
        raise Stopped(self.reason or reason, self.exit_code or exit_code)


@contextlib.contextmanager
def stop_signals() -> Iterator[StopState]:
    """SIGINT and SIGTERM go to `StopState.request` for the duration of the block (installed
    after `ray.init`, which sets a SIGTERM handler of its own that exits at once). A
    KeyboardInterrupt leaving the block becomes `Stopped` with the signal's exit code: the
    one raised by `request` may reach us re-raised by Ray without its message."""
    state = StopState()

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        state.request(f"stopped by {name}", EXIT_CODES[signal.Signals(signum)], frame)

    tune_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = {s: signal.signal(s, handler) for s in EXIT_CODES}
    try:
        yield state
    except KeyboardInterrupt as err:
        if isinstance(err, Stopped):
            raise
        raise Stopped(state.reason or "stopped by SIGINT", state.exit_code or 130) from err
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if tune_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = tune_env


def quiet_worker_stop() -> None:
    """In a trial's worker process: say nothing when Ray stops it. Ray's worker turns SIGTERM
    into SystemExit; when the signal lands inside a weakref callback (`WeakSet._remove` in all
    51 such worker logs found on this machine), Python cannot raise it there and prints
    "Exception ignored in ... SystemExit: 1" with a traceback, which Ray forwards to the user's
    terminal after a finished or resumed search. Python ignores that exit either way (the
    raylet's SIGKILL follows); only the printing goes. Other unraisable errors still print."""
    if getattr(sys.unraisablehook, "quiet_worker_stop", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, SystemExit):
            previous(unraisable)

    hook.quiet_worker_stop = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def storage_message(err: OSError, fallback: Path) -> str:
    """`no space left on device writing PATH (12.0 MB free there)`."""
    path = Path(err.filename) if err.filename else fallback
    probe = next((p for p in (path, *path.parents) if p.exists()), fallback)
    free = shutil.disk_usage(probe).free / 2**20
    what = os.strerror(err.errno or errno.ENOSPC).lower()
    return f"{what} writing {path} ({free:.1f} MB free there)"


class StorageGuard(Callback):
    """A trial that failed because its storage is full or read-only stops the whole search,
    as a signal would (the disk is not the trial's fault: its neighbours would fail next)."""

    def __init__(self, state: StopState, results_dir: Path, exit_code: int) -> None:
        self.state, self.results_dir, self.exit_code = state, results_dir, exit_code

    def _check(self, trial: Any) -> None:
        error = trial.get_pickled_error() or trial.get_error()
        text = str(error)
        full = storage_error(error) if isinstance(error, BaseException) else None
        if full is not None:
            reason = storage_message(full, self.results_dir)
        elif "[Errno 28]" in text or "No space left" in text:  # Tune's text-only error form
            reason = storage_message(OSError(errno.ENOSPC, "", None), self.results_dir)
        else:
            return
        if self.state.reason is None:
            self.state.request(reason, self.exit_code)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._check(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._check(trial)
