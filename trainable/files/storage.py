"""Where files live: a local path, or an object-store URI (`s3://bucket/prefix`) read and
written through `pyarrow.fs`, the layer Ray Tune itself uses for its storage.

Credentials and endpoints come the standard way, from the cloud SDK's own environment
variables and config files (for S3: `AWS_ACCESS_KEY_ID`, `~/.aws/credentials`, and
`AWS_ENDPOINT_URL` for S3-compatible services such as MinIO or Ceph). Every failure of the
store (a bad URI, a missing bucket, denied credentials, an unreachable endpoint) becomes one
`StorageError` line naming the URI and the fix; nothing here prints a credential.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainable.errors import StorageError, UserError, clip

# The object stores pyarrow.fs reads and writes (s3 is the one the tests run against).
SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss")
_URI = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<bucket>[^/]*)(?P<key>/.*)?$")
# S3's own bucket-name rules (GCS and Azure containers are stricter subsets).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_uri(text: str | Path) -> bool:
    return isinstance(text, str) and "://" in text


def check_uri(uri: str) -> str:
    """`uri` with its trailing slashes removed, or a one-line UserError saying what is wrong;
    touches nothing (`validate` checks a spec offline)."""
    match = _URI.match(uri)
    shown = clip(repr(uri), 60)
    if match is None or match["scheme"] not in SCHEMES:
        raise UserError(
            f"storage URI {shown} is not supported; use a local folder or one of "
            f"{', '.join(s + '://BUCKET/PREFIX' for s in SCHEMES[:2])} (also abfs://)"
        )
    if not _BUCKET.match(match["bucket"]) or _climbs(match["key"] or ""):
        raise UserError(
            f"storage URI {shown} needs a bucket name of 3-63 lowercase letters, digits, '.' "
            "or '-' and a prefix without '.' or '..' parts, e.g. s3://my-bucket/searches"
        )
    return uri.rstrip("/")


def _climbs(key: str) -> bool:
    """Whether a key has a '.' or '..' part: mapped onto a local folder, it would leave it."""
    return bool({".", ".."} & set(key.split("/")))


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def _describe(err: OSError, uri: str) -> str:
    """The store's error as the user's problem and its fix (pyarrow raises a bare OSError
    whose text carries the S3 error code)."""
    text = str(err)
    bucket = uri.split("://", 1)[-1].split("/", 1)[0]
    if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
        return f"bucket {bucket!r} does not exist; create it first or fix the URI {uri}"
    if any(code in text for code in ("ACCESS_DENIED", "INVALID_ACCESS_KEY", "SIGNATURE", "403")):
        return (
            f"access to {uri} was denied; check the credentials (AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY or ~/.aws/credentials) and the bucket's policy"
        )
    if _network(text):
        return unreachable_message(uri)
    return f"object store error on {uri}: {clip(text, 200)}"


def _network(text: str) -> bool:
    return "NETWORK_CONNECTION" in text or "curlCode" in text or "resolve" in text.lower()


def unreachable_message(uri: str) -> str:
    return (
        f"cannot reach the object store for {uri}; check the network and, for an "
        "S3-compatible service, AWS_ENDPOINT_URL"
    )


def unreachable(err: BaseException | str) -> bool:
    """Whether `err`, one of its causes, or an error's text (Tune keeps a failed trial's as
    text) carries the S3 client's own network-failure codes: the store could not be reached.
    Narrower than `_describe`'s test, as it reads any trial's error, not only the store's."""
    seen: BaseException | str | None = err
    while seen is not None:
        if "NETWORK_CONNECTION" in str(seen) or "curlCode" in str(seen):
            return True
        seen = None if isinstance(seen, str) else (seen.__cause__ or seen.__context__)
    return False


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Object-store failures inside the block as one StorageError line."""
    try:
        yield
    except OSError as err:
        if isinstance(err, FileNotFoundError | PermissionError | IsADirectoryError):
            raise  # a local file's own error: the caller names it
        raise StorageError(_describe(err, uri)) from err


def filesystem(uri: str) -> tuple[Any, str]:
    """pyarrow's filesystem for `uri` and the path inside it."""
    import pyarrow.fs

    uri = check_uri(uri)
    with store_errors(uri):
        try:
            fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        except Exception as err:  # ArrowInvalid, or a scheme this pyarrow was built without
            raise StorageError(f"cannot open {uri}: {clip(str(err), 120)}") from err
    return fs, path


def check_bucket(uri: str) -> None:
    """The bucket exists and these credentials may read it, or one line saying which is not."""
    import pyarrow.fs

    fs, path = filesystem(uri)
    bucket = path.split("/", 1)[0]
    with store_errors(uri):
        if fs.get_file_info(bucket).type == pyarrow.fs.FileType.NotFound:
            raise StorageError(f"bucket {bucket!r} does not exist; create it first or fix {uri}")
        fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))


def reachable(uri: str) -> bool:
    """Whether the store holding `uri` answers now (one listing request)."""
    try:
        check_bucket(uri)
    except StorageError:
        return False
    return True


def exists(uri: str) -> bool:
    import pyarrow.fs

    fs, path = filesystem(uri)
    with store_errors(uri):
        return bool(fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound)


def read_bytes(location: str | Path) -> bytes:
    """A local file's or an object's bytes; FileNotFoundError if there is none."""
    if not is_uri(location):
        return Path(location).read_bytes()
    import pyarrow.fs

    uri = str(location)
    fs, path = filesystem(uri)
    with store_errors(uri):
        if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
            raise FileNotFoundError(uri)
        with fs.open_input_stream(path) as stream:
            return bytes(stream.read())


def write_bytes(location: str, data: bytes) -> None:
    """A small file, or one object, whole: an object store makes a PUT visible only once it is
    complete (a local file is written in place: for markers, not results)."""
    if not is_uri(location):
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        Path(location).write_bytes(data)
        return
    uri = location
    fs, path = filesystem(uri)
    with store_errors(uri), fs.open_output_stream(path) as stream:
        stream.write(data)


def delete(location: str) -> None:
    if not is_uri(location):
        Path(location).unlink(missing_ok=True)
        return
    uri = location
    fs, path = filesystem(uri)
    with store_errors(uri), contextlib.suppress(FileNotFoundError):
        fs.delete_file(path)


def listing(uri: str, depth: int = 100) -> list[str]:
    """Every object under `uri`, as paths relative to it, at most `depth` folders down."""
    import pyarrow.fs

    fs, path = filesystem(uri)
    selector = pyarrow.fs.FileSelector(path, recursive=True, allow_not_found=True)
    with store_errors(uri):
        infos = fs.get_file_info(selector)
    rel = [i.path[len(path) :].lstrip("/") for i in infos if i.type == pyarrow.fs.FileType.File]
    return sorted(r for r in rel if r.count("/") < depth)


def upload(local: Path, uri: str) -> None:
    """A local file or folder copied to `uri` (objects overwritten, none deleted)."""
    import pyarrow.fs

    fs, path = filesystem(uri)
    with store_errors(uri):
        pyarrow.fs.copy_files(str(local), path, destination_filesystem=fs)


def download(uri: str, local: Path) -> None:
    """An object, or every object under a prefix, copied to `local` (each file written beside
    its target and renamed, so a kill leaves no half file)."""
    import pyarrow.fs

    fs, path = filesystem(uri)
    with store_errors(uri):
        info = fs.get_file_info(path)
        if info.type == pyarrow.fs.FileType.File:
            _download_file(fs, path, local)
            return
        for rel in listing(uri):
            if _climbs(rel):  # an object store allows any key; a local path must stay inside
                raise StorageError(
                    f"object {clip(repr(rel), 80)} under {uri} would be written outside "
                    f"{local}; remove or rename it in the bucket"
                )
            _download_file(fs, f"{path}/{rel}", local / rel)


def _download_file(fs: Any, path: str, local: Path) -> None:
    from trainable.files import atomic

    with (
        atomic.atomic_path(local) as tmp,
        fs.open_input_stream(path) as src,
        open(tmp, "wb") as dst,
    ):
        while chunk := src.read(1 << 22):
            dst.write(chunk)
