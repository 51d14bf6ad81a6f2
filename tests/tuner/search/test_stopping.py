"""The signal handler's own contract, in-process: each signal stops the run with its exit code
(the whole-run paths, a signal in the search or in retraining, are in test_stages)."""

from __future__ import annotations

import errno
import io
import logging
import os
import signal
import sys
import time
import weakref
from pathlib import Path

import pytest

from tests.tuner.conftest import ray_log_messages
from tuner.results.layout import ResultsDir
from tuner.search.stopping import Stopped, quiet_store_outages, quiet_worker_stop, stop_signals


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_outside_the_search_stops_with_its_exit_code(
    sig: signal.Signals, code: int
) -> None:
    before = signal.getsignal(sig)
    with pytest.raises(Stopped) as stopped, stop_signals() as state:
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler runs at the next bytecode; never reached
    assert stopped.value.exit_code == code == state.exit_code
    assert stopped.value.reason == f"stopped by {sig.name}" == state.reason
    assert signal.getsignal(sig) is before  # the previous handler is back


class _Unraisable:
    """Raises from `__del__`: Python cannot propagate it there and reports it as unraisable."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __del__(self) -> None:
        raise self.error


def test_quiet_worker_stop_drops_only_an_ignored_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    quiet_worker_stop()
    quiet_worker_stop()  # a reused actor calls it once per trial: installed once
    _Unraisable(SystemExit(1))
    _Unraisable(ValueError("a real bug"))
    assert seen == [ValueError]


def _sigterm_inside_a_weakref_callback(quiet: bool) -> str:
    """In a Ray worker (Ray's own SIGTERM handler installed): what stderr shows when SIGTERM
    arrives while a weakref callback runs, as when Tune stops a trial's actor."""
    if quiet:
        quiet_worker_stop()
    caught, sys.stderr = sys.stderr, io.StringIO()
    try:

        class Item:
            pass

        item = Item()
        ref = weakref.ref(item, lambda _ref: os.kill(os.getpid(), signal.SIGTERM))  # noqa: F841
        del item  # the callback runs now, and Ray's handler at its next bytecode
        return sys.stderr.getvalue()
    finally:
        sys.stderr = caught


@pytest.mark.usefixtures("ray_session")
def test_a_stopped_trial_worker_prints_no_traceback() -> None:
    import ray

    # max_calls=1: the worker that took the signal exits after its task, as a stopped one would
    task = ray.remote(max_calls=1)(_sigterm_inside_a_weakref_callback)
    loud, quiet = ray.get([task.remote(False), task.remote(True)])
    assert "SystemExit" in loud and "Traceback" in loud  # Ray's handler, reproduced
    assert quiet == ""


def test_rays_records_of_a_full_disk_are_dropped_and_no_other(tmp_path: Path) -> None:
    """A trial whose checkpoint copy hit a full disk: Tune logs its failure with a traceback;
    the storage guard and the run's last line already say it once, with the fix."""
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    # pyarrow's copy (Tune's checkpoint upload) carries the errno in its text only
    pyarrow_full = OSError(
        "[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"
    )
    with ray_log_messages() as seen:
        with quiet_store_outages(ResultsDir(tmp_path / "local")):
            log = logging.getLogger("ray.tune.execution.tune_controller")
            log.error("full", exc_info=full)
            log.error("full, says pyarrow", exc_info=pyarrow_full)
            log.error("a bug", exc_info=ValueError("a bug"))
            log.error("refused", exc_info=ConnectionRefusedError("no bucket here"))
        log.error("after the search", exc_info=full)
    assert seen == ["a bug", "refused", "after the search"]
