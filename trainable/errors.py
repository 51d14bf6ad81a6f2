"""User-facing errors: each carries a one-line message that names the problem and the fix.

The command lines catch `UserError`, print `error: <message>` and exit with `exit_code`;
`--debug` shows the traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
from enum import IntEnum

# The errors that say the storage cannot take a write, rather than that the code is wrong.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class ExitCode(IntEnum):
    """Every exit status of `python -m tuner` and `python -m trainable`, defined once: each
    error class below carries one, and only the command lines turn them into an exit."""

    OK = 0
    FAILED = 1
    CONFIG = 2
    DATA = 3
    DEVICE = 4
    STORAGE = 5
    INTERRUPTED = 130
    TERMINATED = 143


EXIT_MEANINGS = {
    ExitCode.OK: "finished",
    ExitCode.FAILED: "the run failed (it diverged, every seed failed, no trial met the constraints) or a bug",
    ExitCode.CONFIG: "a bad config, spec, flag or budget: nothing started, nothing written",
    ExitCode.DATA: "missing or malformed data (no class folders, too many broken images)",
    ExitCode.DEVICE: "a device the machine or the Ray cluster does not have",
    ExitCode.STORAGE: "the results storage: full, read-only, missing bucket, denied, unreachable",
    ExitCode.INTERRUPTED: "Ctrl-C (SIGINT); resumable",
    ExitCode.TERMINATED: "SIGTERM (a scheduler's or spot instance's stop); resumable",
}


def exit_code_table() -> str:
    """The README's table of exit codes (a test keeps the README in step with it)."""
    rows = ["| exit code | meaning |", "|---|---|"]
    rows += [f"| {int(code)} | {EXIT_MEANINGS[code]} |" for code in ExitCode]
    return "\n".join(rows)


class UserError(Exception):
    """Bad input from the user (config, paths, hardware requests); never a bug."""

    exit_code: int = ExitCode.FAILED


class ConfigError(UserError, ValueError):
    """An invalid configuration value: names the key, the value and what is allowed."""

    exit_code: int = ExitCode.CONFIG


class DataError(UserError):
    """Missing or malformed data on disk."""

    exit_code: int = ExitCode.DATA


class DeviceError(UserError):
    """A device was requested that this machine does not have."""

    exit_code: int = ExitCode.DEVICE


class StorageError(UserError):
    """The results storage cannot take a write (full, read-only); nothing written is lost."""

    exit_code: int = ExitCode.STORAGE


class Interrupted(UserError):
    """A run stopped from outside (Ctrl-C: 130, SIGTERM: 143); its state is saved and it can be
    resumed."""

    exit_code: int = ExitCode.INTERRUPTED

    def __init__(self, message: str, exit_code: int = ExitCode.INTERRUPTED) -> None:
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
