"""User-facing errors: each carries a one-line message that names the problem and the fix.

The command lines catch `UserError`, print `error: <message>` and exit with `exit_code`;
`--debug` shows the traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os

# The errors that say the storage cannot take a write, rather than that the code is wrong.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class UserError(Exception):
    """Bad input from the user (config, paths, hardware requests); never a bug."""

    exit_code = 1


class ConfigError(UserError, ValueError):
    """An invalid configuration value: names the key, the value and what is allowed."""

    exit_code = 2


class DataError(UserError):
    """Missing or malformed data on disk."""

    exit_code = 3


class DeviceError(UserError):
    """A device was requested that this machine does not have."""

    exit_code = 4


class StorageError(UserError):
    """The results storage cannot take a write (full, read-only); nothing written is lost."""

    exit_code = 5


class Interrupted(UserError):
    """A run stopped from outside (Ctrl-C: 130, SIGTERM: 143); its state is saved and it can be
    resumed."""

    exit_code = 130

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def storage_error(err: BaseException) -> OSError | None:
    """The OSError in `err` or its causes that says the storage is full or read-only. Some
    writers (pyarrow's filesystems, which Tune uses) raise an OSError that carries the errno
    only in its text; it is returned as an OSError with the errno set."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            return seen
        if isinstance(seen, OSError):
            code = next((c for c in STORAGE_ERRNOS if os.strerror(c) in str(seen)), None)
            if code is not None:
                return OSError(code, os.strerror(code), seen.filename)
        seen = seen.__cause__ or seen.__context__
    return None


def clip(text: str, limit: int = 80) -> str:
    """`text` made safe for a one-line message: control characters escaped, at most `limit`."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
