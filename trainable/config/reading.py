"""Reading configs: YAML files (a key given twice is an error), `--set key.path=value`
overrides, nested merging, and one-line messages. `trainable.config.tree` re-exports these."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from trainable.errors import ConfigError, clip

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, option: str = "--time-budget") -> float:
    """`90`, `90s`, `10m`, `1.5h` -> seconds; a one-line error naming `option` otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{option} {text!r} is not a duration; write e.g. 600, 600s, 10m or 1.5h")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """`["optimizer.lr=0.003", "augment.hflip=false"]` -> nested dict; values parsed as YAML."""
    tree: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. optimizer.lr=0.003), got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {pair!r}: '{part}' is a value, not a section")
        node[parts[-1]] = value
    return tree


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: plain YAML keeps the last
    one silently, so a pasted block could override a setting without anyone noticing."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # unhashable keys are refused by the base class itself
            if key in seen:
                raise _DuplicateKey(
                    None, None, f"duplicate key {clip(repr(key), 40)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """A YAML file, or an object in a bucket (`s3://...`: `trainable.files.storage`)."""
    from trainable.files import storage

    try:
        data = storage.read_bytes(path)
    except (FileNotFoundError, IsADirectoryError) as err:
        raise ConfigError(f"config file not found: {path} (pass an existing YAML file)") from err
    if not storage.is_uri(path):
        path = Path(path)
    try:
        return yaml.load(data.decode("utf-8"), Loader=_UniqueKeyLoader)
    except _DuplicateKey as err:
        line = f" at line {err.problem_mark.line + 1}" if err.problem_mark is not None else ""
        raise ConfigError(f"{path}: {err.problem}{line}; give each key once") from err
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path} is not valid YAML{line}; fix the syntax") from err
    except RecursionError as err:
        raise ConfigError(f"{path} nests too deeply to be a config; flatten it") from err
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        raise ConfigError(f"{path} has a value YAML cannot load: {clip(str(err))}") from err
