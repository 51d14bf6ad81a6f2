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
import logging
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

from trainable.errors import ExitCode, storage_error
from trainable.files import storage
from tuner import compat
from tuner.results.layout import ResultsDir

# Exit codes as a shell reports a process killed by the signal (128 + signal number).
EXIT_CODES = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}


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

    def note(self, reason: str, exit_code: int) -> bool:
        """Record why the run stops, unless a reason came first; True if this one is first."""
        first = self.reason is None
        if first:
            self.reason, self.exit_code = reason, exit_code
        return first

    def request(self, reason: str, exit_code: int, frame: FrameType | None = None) -> None:
        first = self.note(reason, exit_code)
        tune_handler = compat.tune_interrupt_handler()
        if first and self.in_search and tune_handler is not None:
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


class _StoreOutage(logging.Filter):
    """Drops Ray's own log records caused by the results storage failing: an unreachable object
    store, a full or read-only disk (a trial's failure, its checkpoint's copy, a state save, a
    folder it could not create), each with its traceback. The guard and the run's last line
    say it once, with the fix."""

    def __init__(self, remote: bool) -> None:
        super().__init__()
        self.remote = remote

    def filter(self, record: logging.LogRecord) -> bool:
        cause = record.exc_info[1] if record.exc_info else None
        if cause is not None and storage_error(cause) is not None:
            return False
        return not (
            self.remote and storage.unreachable(cause if cause is not None else record.getMessage())
        )


@contextlib.contextmanager
def quiet_store_outages(results: ResultsDir) -> Iterator[None]:
    """While the search runs: Ray's records of a storage failure stay out of the terminal.
    Ray's loggers reach it through the `ray` logger's handlers when Ray configured logging,
    else through the root logger's, or Python's last-resort handler when there are none (as
    with `ray.init(configure_logging=False)`, ours)."""
    handlers = [*logging.getLogger("ray").handlers, *logging.getLogger().handlers]
    handlers += [logging.lastResort] if logging.lastResort is not None else []
    outage = _StoreOutage(remote=results.remote is not None)
    for handler in handlers:
        handler.addFilter(outage)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(outage)


def storage_message(err: OSError, fallback: Path) -> str:
    """`no space left on device writing PATH (12.0 MB free there)`."""
    path = Path(err.filename) if err.filename else fallback
    probe = next((p for p in (path, *path.parents) if p.exists()), fallback)
    free = shutil.disk_usage(probe).free / 2**20
    what = os.strerror(err.errno or errno.ENOSPC).lower()
    return f"{what} writing {path} ({free:.1f} MB free there)"


class StorageGuard(Callback):
    """A trial that failed because its storage is full, read-only or (results in a bucket)
    unreachable stops the whole search, as a signal would: the storage is not the trial's
    fault, and its neighbours would fail next. The stop reason ends with the fix."""

    def __init__(self, state: StopState, results: ResultsDir, exit_code: int) -> None:
        self.state, self.results, self.exit_code = state, results, exit_code

    def _check(self, trial: Any, retried: bool) -> None:
        if self.state.reason is not None:  # stopping already: no more probes of the store
            return
        try:
            error: Any = trial.get_pickled_error() or trial.get_error()
        except OSError as err:  # Tune reads the trial's error from the storage itself
            error = err
        reason = self._storage_reason(error, retried)
        if reason is not None:
            self.state.request(reason, self.exit_code)

    def _storage_reason(self, error: Any, retried: bool) -> str | None:
        text = str(error)
        full = storage_error(error) if isinstance(error, BaseException) else None
        if full is None and compat.is_disk_full_text(text):
            full = OSError(errno.ENOSPC, "", None)  # Tune's text-only error form
        if full is not None:
            return f"{storage_message(full, self.results.path)}; free some space"
        remote = self.results.remote
        if remote is None or not storage.unreachable(error):
            return None
        if not storage.reachable(remote):
            return storage.unreachable_message(remote)
        # A blip the store's client did not retry through: the trial fails as any other would.
        then = "Tune retries it from its last checkpoint" if retried else "it ends errored"
        print(
            f"warning: a trial lost the object store for a moment ({remote}); {then}",
            file=sys.stderr,
            flush=True,
        )
        return None

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._check(trial, retried=True)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._check(trial, retried=False)
