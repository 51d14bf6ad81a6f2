"""User-facing errors: each carries a one-line message that names the problem and the fix.

The command lines catch `UserError`, print `error: <message>` and exit with `exit_code`;
`--debug` shows the traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


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


class Interrupted(UserError):
    """The user stopped a run (Ctrl-C); its state is saved and it can be resumed."""

    exit_code = 130
