"""What both command lines share: the name they were run as, and the package version."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "hpsearch"


def prog(module: str) -> str:
    """`python -m MODULE` when run that way, else the name the command was run as (the
    console scripts `hpsearch-tune`, `hpsearch-train`), so help and errors name it."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if not name or name in ("__main__.py", "-c", "-m") or name.endswith(".py"):
        return f"python -m {module}"
    return name


def version() -> str:
    from importlib import metadata

    try:
        return f"{PACKAGE} {metadata.version(PACKAGE)}"
    except metadata.PackageNotFoundError:  # a source checkout that was not pip-installed
        import tomllib

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            data = tomllib.loads(pyproject.read_text())
            return f"{PACKAGE} {data['project']['version']} (source tree)"
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return f"{PACKAGE} (version unknown)"
