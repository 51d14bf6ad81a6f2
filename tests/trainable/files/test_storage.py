"""Object-store access against a real S3 server (moto in server mode on 127.0.0.1): reads,
writes, whole folders, and one line for each way a bucket can be out of reach."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import S3, S3_CREDENTIALS
from trainable.config import read_yaml
from trainable.errors import ConfigError, StorageError
from trainable.files import storage


def test_a_folder_goes_up_and_comes_back_whole(s3: S3, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "a" / "b" / "deep.bin").write_bytes(bytes(range(256)) * 100)
    storage.upload(src, s3.uri("prefix", "run"))
    assert s3.keys("prefix/run") == ["a/b/deep.bin", "top.txt"]
    assert storage.listing(s3.uri("prefix", "run"), depth=1) == ["top.txt"]

    back = tmp_path / "back"
    storage.download(s3.uri("prefix", "run"), back)
    assert (back / "top.txt").read_text() == "top"
    assert (back / "a" / "b" / "deep.bin").read_bytes() == bytes(range(256)) * 100
    assert not list(back.rglob(".*.tmp"))  # each file was written beside its target, renamed


def test_single_objects_read_write_exist_delete(s3: S3) -> None:
    uri = s3.uri("x", "marker")
    assert not storage.exists(uri)
    storage.write_bytes(uri, b"token")
    assert storage.exists(uri) and storage.read_bytes(uri) == b"token"
    storage.delete(uri)
    assert not storage.exists(uri)
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(uri)


def test_a_config_is_read_from_the_bucket(s3: S3) -> None:
    storage.write_bytes(s3.uri("cfg.yaml"), yaml.safe_dump({"epochs": 3}).encode())
    assert read_yaml(s3.uri("cfg.yaml")) == {"epochs": 3}
    with pytest.raises(ConfigError, match=r"config file not found: s3://.*/missing.yaml"):
        read_yaml(s3.uri("missing.yaml"))


def test_a_missing_bucket_is_one_line(s3: S3) -> None:
    with pytest.raises(StorageError, match=r"^bucket 'no-such-bucket' does not exist; create it"):
        storage.check_bucket("s3://no-such-bucket/x")
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        storage.write_bytes("s3://no-such-bucket/x", b"1")


def test_denied_credentials_are_one_line_naming_the_fix(denying_server: str) -> None:
    for call in (
        lambda: storage.check_bucket("s3://bucket/x"),
        lambda: storage.listing("s3://bucket/x"),
    ):
        with pytest.raises(
            StorageError, match=r"access to s3://.* was denied; check the credentials"
        ):
            call()
    with pytest.raises(StorageError) as err:
        storage.write_bytes("s3://bucket/x", b"1")
    assert "denied" in str(err.value) and "\n" not in str(err.value)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in str(err.value)


def test_an_unreachable_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(StorageError, match=r"cannot reach the object store for s3://bucket/x"):
        storage.check_bucket("s3://bucket/x")


@pytest.mark.parametrize("uri", ["s3://", "s3:///x", "foo://bucket/x", "s3://UPPER/x"])
def test_bad_uris_are_refused_before_any_request(uri: str) -> None:
    with pytest.raises(Exception, match="storage URI") as err:
        storage.filesystem(uri)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("key", "climbs"),
    [("best/../../x", True), ("./x", True), ("a/..", True), ("a..b/c.d", False), ("x", False)],
)
def test_object_keys_that_would_leave_the_local_folder_are_recognised(
    key: str, climbs: bool
) -> None:
    """Real S3 accepts keys with '..' parts (moto's server refuses to store them, so
    `download`'s refusal of them is checked here, on its predicate)."""
    assert storage._climbs(key) is climbs
