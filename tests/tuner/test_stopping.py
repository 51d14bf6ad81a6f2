"""The signal handler's own contract, in-process: each signal stops the run with its exit code
(the whole-run paths, a signal in the search or in retraining, are in test_stages)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tuner.stopping import Stopped, stop_signals


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
