"""The bucket becomes unreachable in the middle of a search, then comes back: a real S3
server (moto) behind a TCP link the test cuts, so the outage is a network one and the
bucket's contents survive it."""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bench.support.killing import start_run
from tests.conftest import S3
from tests.netlink import Link
from tests.tuner.conftest import ray_log_messages, write_spec
from tests.tuner.results.test_bucket import OWN_OUTPUTS, manifest_in, tuner
from trainable.errors import StorageError
from trainable.files import storage
from tuner.results import bucket
from tuner.search.stopping import Stopped, StopState, StorageGuard, quiet_store_outages
from tuner.stages import experiment

NETWORK_ERROR = (
    "When reading information for key 'x' in bucket 'b': AWS Error NETWORK_CONNECTION during "
    "HeadObject operation: curlCode: 7, Could not connect to server"
)


@pytest.fixture
def link(s3: S3, monkeypatch: pytest.MonkeyPatch) -> Iterator[Link]:
    """The S3 server behind a link; this process and its children reach it only through it."""
    where = urlsplit(s3.endpoint)
    line = Link((where.hostname or "127.0.0.1", where.port or 80))
    monkeypatch.setenv("AWS_ENDPOINT_URL", line.url)
    yield line
    line.cut()


class _FailedTrial:
    """The one thing StorageGuard reads of Tune's trial, its error (the real path, Tune's own
    trials failing on the cut link, is the end-to-end test below)."""

    def __init__(self, error: Any) -> None:
        self.error = error

    def get_pickled_error(self) -> Any:
        return None

    def get_error(self) -> Any:
        return self.error


def test_unreachable_reads_the_s3_clients_own_codes_in_causes_and_text() -> None:
    try:
        try:
            raise OSError(NETWORK_ERROR)
        except OSError as err:
            raise RuntimeError("the trial failed") from err
    except RuntimeError as chained:
        assert storage.unreachable(chained)
    assert storage.unreachable(f"TuneError: trial failed\n{NETWORK_ERROR}")
    assert not storage.unreachable(OSError(errno.ENOSPC, "No space left on device"))
    assert not storage.unreachable(ValueError("could not resolve the config key"))


def test_a_trial_losing_the_bucket_stops_the_search_only_while_it_is_down(
    s3: S3, link: Link, capsys: pytest.CaptureFixture[str]
) -> None:
    results = bucket.results_at(s3.uri("searches", "blip"))
    state = StopState()
    guard = StorageGuard(state, results, StorageError.exit_code)
    guard.on_trial_error(0, [], _FailedTrial(RuntimeError("a bug in the trial")))
    guard.on_trial_error(0, [], _FailedTrial(OSError(NETWORK_ERROR)))  # the bucket answers again
    assert state.reason is None
    assert capsys.readouterr().err.count("warning: a trial lost the object store") == 1
    link.cut()
    with pytest.raises(Stopped):  # outside Tune's loop a stop request raises at once
        guard.on_trial_recover(0, [], _FailedTrial(OSError(NETWORK_ERROR)))
    assert state.exit_code == StorageError.exit_code
    assert state.reason == storage.unreachable_message(s3.uri("searches", "blip"))


def test_rays_records_of_the_outage_are_dropped_and_no_other(s3: S3) -> None:
    results = bucket.results_at(s3.uri("searches", "quiet"))
    with ray_log_messages() as seen:
        with quiet_store_outages(results):
            log = logging.getLogger("ray.tune.execution.tune_controller")
            log.error("Trial task failed", exc_info=OSError(NETWORK_ERROR))
            log.error(f"Unhandled error: {NETWORK_ERROR}")
            log.error("Trial task failed", exc_info=ValueError("a bug"))
        log.error("after the search", exc_info=OSError(NETWORK_ERROR))
    assert seen == ["Trial task failed", "after the search"]


@pytest.mark.slow
def test_a_bucket_outage_mid_search_is_one_line_and_the_search_resumes_after(
    s3: S3, link: Link, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_file = write_spec(tmp_path, "outage", s3.uri("searches"))
    raw = yaml.safe_load(spec_file.read_text())
    raw["base"]["dataset"]["synthetic_train_size"] = 1500  # epochs long enough to cut in
    spec_file.write_text(yaml.safe_dump(raw))
    where = s3.uri("searches", "outage")
    proc = start_run(spec_file)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if any("/checkpoint_" in k for k in s3.keys("searches/outage")):
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before a trial checkpointed"
    link.cut()
    _, err = proc.communicate(timeout=300)

    assert proc.returncode == StorageError.exit_code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]  # neither ours nor Ray's records of the outage
    assert err.strip().splitlines()[-1] == (
        f"error: {storage.unreachable_message(where)}, then continue with "
        f"'python -m tuner resume {where}'"
    )
    with monkeypatch.context() as direct:  # the bucket itself, past the cut link
        direct.setenv("AWS_ENDPOINT_URL", s3.endpoint)
        assert manifest_in(s3, "searches", "outage")["status"] == "running"  # last published

    link.restore()
    code, out, err = tuner("resume", where, "--num-cpus", "2", "--no-dashboard")
    assert code == 0, err[-3000:]
    assert "Traceback" not in err and f"results: {where}" in out
    assert [k for k in OWN_OUTPUTS if k not in s3.keys("searches/outage")] == []
    assert manifest_in(s3, "searches", "outage")["status"] == "finished"


def test_an_outage_outside_the_search_is_one_line_saying_what_to_do_next(
    s3: S3, link: Link
) -> None:
    """Retraining, export or a stage's publish: the bucket's write fails (for real, through
    the cut link); the line says to resume once the search exists, else to run again."""
    where = s3.uri("searches", "later")
    results = bucket.results_at(where)
    link.cut()

    def write_to_the_bucket() -> None:
        with experiment._storage_errors(results):
            storage.write_bytes(f"{where}/summary.csv", b"trial_id\n")

    with pytest.raises(StorageError) as before:  # `run` before the search's folder exists
        write_to_the_bucket()
    assert str(before.value) == (
        f"{storage.unreachable_message(where)}, then run the same command again"
    )
    results.path.mkdir(parents=True)
    results.manifest.write_text("{}")  # the working copy of a search that exists
    with pytest.raises(StorageError) as later:
        write_to_the_bucket()
    assert str(later.value) == (
        f"{storage.unreachable_message(where)}, then continue with 'python -m tuner resume {where}'"
    )
