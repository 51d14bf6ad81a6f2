"""What both command lines share: the name they were run as, the package version, and the
example files the packages ship, found by name."""

from __future__ import annotations

import re
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


# A plain name (`quick`, `cifar10_fastnet`), not a path: looked up among a package's examples.
_EXAMPLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def examples(package: str) -> list[str]:
    """The example files a package ships (`trainable/examples`, `tuner/examples`), by name."""
    from importlib import resources

    folder = resources.files(package) / "examples"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def resolve_example(given: str, package: str) -> str:
    """`given` itself when it is an existing file, a URI or a path; the installed example of
    that name when it is a plain name that is not a file here (`python -m tuner run quick`)."""
    from importlib import resources

    if Path(given).exists() or not _EXAMPLE_NAME.fullmatch(given):
        return given
    if given in examples(package):
        return str(resources.files(package) / "examples" / f"{given}.yaml")
    from trainable.errors import ConfigError

    raise ConfigError(
        f"no file {given!r}, and no example of that name: pass a YAML file, or one of "
        f"{', '.join(examples(package))}"
    )
