"""bench/support/variants.py: the command names every variant when given none."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.support.variants import VARIANTS, main


def test_the_bare_command_lists_every_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path))
    for name in VARIANTS:  # written before: the command finds them and builds nothing
        (tmp_path / "variants" / name).mkdir(parents=True)
        (tmp_path / "variants" / name / ".done").touch()
    assert main([]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "variants" / n) for n in VARIANTS]
    assert main(["few50"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "variants" / "few50")]


def test_an_unknown_variant_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["gray28", "mnist"])
    assert (
        exited.value.code == 2 and "no variant mnist: choose from gray28" in capsys.readouterr().err
    )
