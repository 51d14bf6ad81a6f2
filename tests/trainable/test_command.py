"""trainable.command: example configs and search spaces found by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainable.command import examples, resolve_example
from trainable.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_the_packages_ship_the_examples_the_checkout_links_to() -> None:
    assert examples("tuner") == sorted(p.stem for p in (REPO / "search_spaces").glob("*.yaml"))
    assert examples("trainable") == sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))
    assert {"quick", "default", "fast"} <= set(examples("tuner"))


def test_a_plain_name_is_an_example_and_a_path_or_uri_is_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = Path(resolve_example("quick", "tuner"))
    assert found.read_text() == (REPO / "search_spaces" / "quick.yaml").read_text()
    assert resolve_example("s3://bucket/x/best_config.yaml", "trainable").startswith("s3://")
    assert resolve_example("models:/cifar/3", "trainable") == "models:/cifar/3"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick").write_text("name: mine\n")  # a file of that name here wins
    assert resolve_example("quick", "tuner") == "quick"
    with pytest.raises(ConfigError, match=r"no example of that name.*default, fast, quick"):
        resolve_example("quik", "tuner")
