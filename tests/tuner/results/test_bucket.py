"""A search whose results live in a bucket, against a real S3 server (moto in server mode on
127.0.0.1), driven through the command line as a user would: run, read back with show,
report, list and export from another machine's point of view (no working copy), resume after
the driver is killed, and the refusals."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from bench.support.killing import _reap_group, start_run
from tests.conftest import S3, run_cli
from tests.tuner.conftest import tiny_spec, write_spec
from trainable.files import storage
from tuner.cli import main as tuner_main
from tuner.results import bucket
from tuner.results.layout import ResultsDir
from tuner.search.searcher import make_searcher
from tuner.spec import validate_spec

OWN_OUTPUTS = [
    "search_space.yaml",
    "manifest.json",
    "optuna_study.journal",
    "trials.parquet",
    "summary.csv",
    "best/checkpoint.pt",
    "best/test_summary.json",
    "best/test_metrics/confusion_matrix.png",
    "best/runs/seed-0/outcome.json",
    "best_config.yaml",
]


def tuner(*args: str | Path) -> tuple[int, str, str]:
    done = run_cli("tuner", *args, timeout=540)
    return done.returncode, done.stdout, done.stderr


def no_working_copies() -> None:
    """Forget this machine's copies: what follows reads only what the bucket holds."""
    import shutil

    shutil.rmtree(bucket.working_copy("s3://x/y").parents[1], ignore_errors=True)


def manifest_in(s3: S3, *parts: str) -> dict[str, object]:
    return dict(json.loads(storage.read_bytes(s3.uri(*parts, "manifest.json"))))


@pytest.mark.slow
def test_a_search_on_a_bucket_survives_its_driver_and_reads_back_from_the_bucket(
    s3: S3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL of the driver's process group once a trial has checkpointed into the bucket;
    every working copy is then deleted before each step, so the resume and the read-backs run
    as if on other machines, from what the bucket holds alone."""
    where = s3.uri("searches", "on-s3")
    kill_and_check_it_stopped(s3, write_spec(tmp_path, "on-s3", s3.uri("searches")))

    no_working_copies()
    code, out, err = tuner("resume", where, "--num-cpus", "2", "--no-dashboard")
    assert code == 0, err[-3000:]
    # Not even a stopped trial worker's (Ray forwards its stderr): tuner.search.stopping.quiet_worker_stop
    assert "Traceback" not in err and f"results: {where}" in out
    keys = s3.keys("searches/on-s3")
    assert [k for k in OWN_OUTPUTS if k not in keys] == []
    assert "tuner.pkl" in keys  # Ray Tune's own state and trial folders went there too
    assert manifest_in(s3, "searches", "on-s3")["status"] == "finished"
    summary = storage.read_bytes(f"{where}/summary.csv").decode()
    rows = summary.strip().splitlines()
    assert len(rows) == 1 + 4  # header + every trial
    # Every trial's folder is in the bucket. A trial started after the last experiment state
    # Tune synced before the kill is unknown to the resume, which runs a new trial instead: its
    # folder stays beside them (at most one per concurrent trial, 2 here).
    ids = {f"trial-{row.split(',')[0]}" for row in rows[1:]}
    folders = {k.split("/")[0] for k in keys if k.startswith("trial-")}
    assert ids <= folders and len(folders - ids) <= 2

    # The commands that read results, in this process (they start no Ray).
    def read_back(*args: str) -> str:
        no_working_copies()
        code = tuner_main(list(args))
        out, err = capsys.readouterr()
        assert code == 0, err[-2000:]
        return out

    out = read_back("show", where)
    assert "status: finished" in out and f"results: {where}" in out and "best config (" in out
    out = read_back("list", s3.uri("searches"))
    assert "on-s3" in out and where in out
    assert read_back("report", where).strip() == f"wrote {where}/report/report.html"
    assert "report/learning_curves.png" in s3.keys("searches/on-s3")
    read_back("export", where, "--format", "json")
    exported = json.loads(storage.read_bytes(f"{where}/best_config.json"))

    # Production training on another machine, from the exported config in the bucket.
    prod = tmp_path / "prod"
    config_uri = f"{where}/best_config.yaml"
    done = run_cli("trainable", "train", "--config", config_uri, "--out", prod, "--set", "epochs=1")
    assert done.returncode == 0, done.stderr[-2000:]
    trained = yaml.safe_load((prod / "config.yaml").read_text())
    assert trained["optimizer"]["lr"] == exported["optimizer"]["lr"]


def kill_and_check_it_stopped(s3: S3, spec_file: Path) -> None:
    raw = yaml.safe_load(spec_file.read_text())
    raw["base"]["dataset"]["synthetic_train_size"] = 1500  # epochs long enough to kill in
    spec_file.write_text(yaml.safe_dump(raw))
    prefix = f"searches/{raw['name']}"
    proc = start_run(spec_file)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if any("/checkpoint_" in k for k in s3.keys(prefix)):
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before a trial checkpointed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    _reap_group(proc.pid)
    assert manifest_in(s3, *prefix.split("/"))["status"] == "running"


def test_a_missing_bucket_is_refused_before_anything_starts(s3: S3, tmp_path: Path) -> None:
    spec_file = write_spec(tmp_path, "nowhere")
    code, _, err = tuner("run", spec_file, "--storage-path", "s3://no-such-bucket/searches")
    assert code == 5, err[-2000:]
    assert err.strip().splitlines() == [
        "error: bucket 'no-such-bucket' does not exist; create it first or fix "
        "s3://no-such-bucket/searches/nowhere"
    ]
    assert not bucket.working_copy("s3://no-such-bucket/searches/nowhere").exists()


def test_existing_results_in_the_bucket_are_never_overwritten(s3: S3, tmp_path: Path) -> None:
    storage.write_bytes(s3.uri("searches", "taken", "search_space.yaml"), b"name: taken\n")
    spec_file = write_spec(tmp_path, "taken")
    code, _, err = tuner("run", spec_file, "--storage-path", s3.uri("searches"))
    assert code == 1
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            f"error: results folder {s3.uri('searches', 'taken')} already exists; continue it with"
        )
    )
    assert s3.keys("searches/taken") == ["search_space.yaml"]


@pytest.mark.parametrize("command", ["show", "resume", "report"])
def test_a_uri_without_results_is_one_line(
    s3: S3, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tuner_main([command, s3.uri("searches", "nothing")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {s3.uri('searches', 'nothing')} holds no search results (no search_space.yaml "
        "and manifest.json); see: python -m tuner list <bucket URI>"
    ]


def test_the_journal_travels_with_every_state_snapshot_tune_uploads(s3: S3, tmp_path: Path) -> None:
    """With a bucket, the searcher copies the study journal beside its own state each time Tune
    saves it (Tune uploads that folder as one): the bucket's journal is never behind."""
    spec = validate_spec(tiny_spec("journal", s3.uri("searches")))
    results = bucket.results_for(spec.storage_path, spec.name)
    results.path.mkdir(parents=True)
    searcher = make_searcher(spec, results)
    searcher.suggest("t1")  # one trial: the journal now holds its creation
    staging = tmp_path / "staging"
    staging.mkdir()
    searcher.save_to_dir(str(staging), "s")
    assert (staging / "optuna_study.journal").read_bytes() == results.study.read_bytes() != b""

    (tmp_path / "local").mkdir()
    local = make_searcher(spec, ResultsDir(tmp_path / "local"))
    local.suggest("t1")
    (staging / "local").mkdir()
    local.save_to_dir(str(staging / "local"), "s")
    assert not (staging / "local" / "optuna_study.journal").exists()  # local: Tune's own folder


def test_working_copies_are_one_per_uri_and_own_files_are_named_once() -> None:
    a, b = bucket.working_copy("s3://b1/x/run"), bucket.working_copy("s3://b2/x/run")
    assert a != b and a.name == b.name == "run"
    results = ResultsDir(Path("/results/run"))
    assert results.owned("best/checkpoint.pt") and not results.owned("trial-1/result.json")
    assert results.owned("best/runs/seed-0/last/checkpoint.pt")
    assert not results.owned("best/runs/seed-0/last/checkpoint.pt", runs=False)


def test_denied_credentials_are_refused_before_anything_starts(
    denying_server: str, tmp_path: Path
) -> None:
    spec_file = write_spec(tmp_path, "denied")
    code, _, err = tuner("run", spec_file, "--storage-path", "s3://some-bucket/searches")
    assert code == 5, err[-2000:]
    assert err.strip().splitlines() == [
        "error: access to s3://some-bucket/searches/denied was denied; check the credentials "
        "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials) and the bucket's policy"
    ]
    assert not bucket.working_copy("s3://some-bucket/searches/denied").exists()
