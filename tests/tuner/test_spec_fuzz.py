"""Fuzzed bad input: every malformed search-space file and every escaping experiment name is
refused by validation with exit code 2, one `error: ...` line that names the problem, no
traceback, and nothing written under the storage path.

Every generated file is invalid by construction (the valid `tiny_spec` plus exactly one mutation
that breaks it, or text that cannot be a mapping). As a guard, `run` is only called after
`validate` returned 2 on the same file, so a strategy bug can never start a real Ray search.
"""

from __future__ import annotations

import contextlib
import copy
import io
import string
import sys
import tempfile
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.tuner.conftest import tiny_spec
from trainable.config import TrainConfig
from trainable.errors import ConfigError
from tuner.cli import load, main
from tuner.spec import SearchSpec

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# The spec every mutation starts from: valid, and `validate` accepts it (checked below).
VALID_NAME = "fuzz"
DELETE = object()


def base_spec() -> dict[str, Any]:
    return copy.deepcopy(tiny_spec(VALID_NAME, "results"))


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def assert_refused(content: str | bytes, needle: str | None, cpu: bool = False) -> str:
    """Write `content` as a spec file, validate it, then `run` it; both must refuse it cleanly."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec = tmp / "spec.yaml"
        if isinstance(content, bytes):
            spec.write_bytes(content)
        else:
            spec.write_text(content, encoding="utf-8")
        storage = tmp / "results"
        rc, out, err = call(["validate", str(spec)])
        # Never `run` a file that validates: that would start a real search. `load` is what
        # `run` validates with, options included.
        assert rc == 2, f"validate accepted or mishandled it (rc {rc}): {out}{err}\n{content!r}"
        data = str(tmp / "data") if cpu else None
        with pytest.raises(ConfigError):
            load(spec, Namespace(data_root=data, storage_path=str(storage), cpu=cpu))
        options = ["--cpu", "--data-root", str(tmp / "data")] if cpu else []
        # Another test's session-wide Ray may be up already; the call must not start one.
        ray_was_up = "ray" in sys.modules and sys.modules["ray"].is_initialized()
        rc, out, err = call(
            ["run", str(spec), "--storage-path", str(storage), "--no-dashboard", *options]
        )
        assert rc == 2, (rc, err)
        assert out == ""
        assert err.startswith("error: "), err
        assert err.endswith("\n") and len(err.splitlines()) == 1, repr(err)
        assert "\r" not in err and "\x00" not in err, repr(err)
        assert "Traceback" not in err
        assert len(err) < 700, f"message too long ({len(err)} chars): {err[:200]!r}"
        if needle is not None:
            assert needle in err, (needle, err)
        assert not storage.exists()
        assert sorted(p.name for p in tmp.iterdir()) == ["spec.yaml"]
        if "ray" in sys.modules and not ray_was_up:
            assert not sys.modules["ray"].is_initialized()
        return err


def dump(spec: Any, unicode: bool) -> str:
    return yaml.safe_dump(spec, allow_unicode=unicode, sort_keys=False)


def test_base_spec_is_valid(tmp_path: Path) -> None:
    """The mutations below start from a spec that validates, so each failure is the mutation's."""
    path = tmp_path / "ok.yaml"
    path.write_text(dump(base_spec(), unicode=False))
    assert call(["validate", str(path)])[0] == 0


def test_refusal_helper_catches_bad_errors() -> None:
    """The checker itself fails on a file that validates (and so never runs it)."""
    with pytest.raises(AssertionError, match="validate accepted"):
        assert_refused(dump(base_spec(), unicode=False), None)


# ---- values of the wrong type -----------------------------------------------------------------

junk_text = st.text(max_size=30).map(lambda s: "x" + s)  # never parses as a number or a bool
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
lists = st.lists(scalars, max_size=4)
dicts = st.dictionaries(st.text(min_size=1, max_size=8), scalars, min_size=1, max_size=3)
fractional = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: not float(f).is_integer()
)
not_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])

WRONG_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "int": st.one_of(st.booleans(), junk_text, lists, dicts, fractional, not_finite, st.none()),
    "opt_int": st.one_of(st.booleans(), junk_text, lists, dicts, fractional, not_finite),
    "float": st.one_of(st.booleans(), junk_text, lists, dicts, not_finite, st.none()),
    "opt_float": st.one_of(st.booleans(), junk_text, lists, dicts, not_finite),
    "str": st.one_of(st.booleans(), st.integers(), st.floats(), lists, dicts, st.none()),
    "bool": st.one_of(
        junk_text,
        lists,
        dicts,
        st.integers(min_value=2),
        st.floats(0.01, 0.99),
        st.none(),
    ),
    "literal": st.one_of(junk_text, st.integers(), lists, dicts, st.none()),
    "section": st.one_of(st.booleans(), st.integers(), st.floats(), st.text(), lists, st.none()),
}

# path -> (kind, values of the right type that are out of range); paths are "/"-separated.
FIELDS: dict[str, tuple[str, st.SearchStrategy[Any] | None]] = {
    "name": ("str", None),
    "base": ("section", None),
    "space": ("section", st.just({})),
    "searcher": ("section", None),
    "scheduler": ("section", None),
    "resources": ("section", None),
    "retrain": ("section", None),
    "storage_path": ("str", None),
    "num_samples": ("int", st.integers(max_value=0) | st.integers(min_value=100_001)),
    "max_concurrent_trials": ("opt_int", st.integers(max_value=0)),
    "time_budget_s": ("opt_float", st.floats(max_value=0.0, allow_nan=False)),
    "max_failures": ("int", st.integers(max_value=-1)),
    "searcher/seed": ("int", st.integers(max_value=-1) | st.integers(min_value=2**32)),
    "searcher/n_startup_trials": ("int", st.integers(max_value=0)),
    "searcher/multivariate": ("bool", None),
    "scheduler/kind": ("literal", st.sampled_from(["ASHA", "hyperband", "", "fifo "])),
    "scheduler/metric": ("literal", st.sampled_from(["val_accuracy", "loss", "VAL_LOSS"])),
    "scheduler/mode": ("literal", st.sampled_from(["max"])),  # val_loss must be minimised
    "scheduler/max_t": ("int", st.integers(max_value=0) | st.integers(min_value=10_001)),
    "scheduler/grace_period": ("int", st.integers(max_value=0) | st.integers(min_value=4)),
    "scheduler/reduction_factor": ("float", st.floats(max_value=1.0, allow_nan=False)),
    "resources/cpus": ("float", st.floats(max_value=0.0) | st.floats(min_value=1024.001)),
    "resources/gpu": (
        "float",
        st.one_of(
            st.floats(max_value=-0.001),
            st.floats(min_value=64.001),
            st.sampled_from([0.3, 0.4, 0.6, 0.7, 0.75, 0.15, 0.9]),  # fractions that don't divide 1
            st.floats(1.01, 63.99).filter(lambda f: not f.is_integer()),
        ),
    ),
    "resources/memory_mb": (
        "opt_int",
        st.integers(max_value=63) | st.integers(min_value=16_777_217),
    ),
    "retrain/epochs": ("opt_int", st.integers(max_value=0) | st.integers(min_value=10_001)),
    "retrain/seeds": ("int", st.integers(max_value=0) | st.integers(min_value=101)),
    "space/optimizer.lr": ("section", None),
    "space/optimizer.lr/type": ("literal", st.sampled_from(["normal", "LogUniform", "grid"])),
    "space/optimizer.lr/low": (
        "opt_float",
        st.floats(max_value=0.0, allow_nan=False) | st.floats(min_value=3e-2, allow_nan=False),
    ),
    "space/optimizer.lr/high": ("opt_float", st.floats(max_value=1e-4, allow_nan=False)),
    "space/model.dropout/low": ("opt_float", st.floats(min_value=0.5, allow_nan=False)),
    "space/model.dropout/high": (
        "opt_float",
        st.floats(max_value=0.0, allow_nan=False) | st.floats(min_value=1.0, allow_nan=False),
    ),
}


def put(spec: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split("/")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value


@st.composite
def wrong_values(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    path = draw(st.sampled_from(sorted(FIELDS)))
    kind, out_of_range = FIELDS[path]
    choices = [WRONG_TYPE[kind]] + ([out_of_range] if out_of_range is not None else [])
    value = draw(st.one_of(choices))
    spec = base_spec()
    put(spec, path, value)
    # The message names the top-level key (or the searched key) that is wrong.
    needle = path.split("/")[1] if path.startswith("space/") else path.split("/")[0]
    return spec, needle


# ---- search distributions, trainer keys, unknown and missing keys -------------------------------

TRAINER_LEAVES = {
    f"{section}.{key}" if key else section
    for section, field in TrainConfig.model_fields.items()
    for key in (getattr(field.annotation, "model_fields", None) or [""])
}
unknown_key = st.text(min_size=0, max_size=30).map(lambda s: "zz" + s)
any_value = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=8)


def bad_params() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """(searched key, distribution) pairs that the spec or the trainer must refuse."""
    num = st.floats(allow_nan=False, allow_infinity=False, width=32)
    return st.one_of(
        # low >= high
        st.tuples(num, num).map(
            lambda lh: (
                "model.dropout",
                {"type": "uniform", "low": max(lh), "high": min(lh)},
            )
        ),
        # log scale through zero or below
        st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(
            lambda low: ("optimizer.lr", {"type": "loguniform", "low": low, "high": 1e-2})
        ),
        st.integers(max_value=0).map(
            lambda low: ("model.width", {"type": "int", "low": low, "high": 16, "log": True})
        ),
        # int with fractional bounds
        fractional.filter(lambda f: abs(f) < 1e6).map(
            lambda f: ("model.width", {"type": "int", "low": f, "high": 1e6 + 0.5})
        ),
        # choice without values / with bounds; numeric types with values
        st.sampled_from([None, []]).map(lambda v: ("batch_size", {"type": "choice", "values": v})),
        st.just(("batch_size", {"type": "choice", "values": [32], "low": 1})),
        st.sampled_from(["uniform", "loguniform", "int"]).map(
            lambda t: ("model.width", {"type": t, "low": 1, "high": 8, "values": [1, 2]})
        ),
        # missing bounds or type, unknown distribution keys
        st.sampled_from(["low", "high", "type"]).map(
            lambda k: (
                "optimizer.lr",
                {
                    key: value
                    for key, value in {"type": "loguniform", "low": 1e-4, "high": 1e-2}.items()
                    if key != k
                },
            )
        ),
        st.tuples(unknown_key, any_value).map(
            lambda kv: (
                "optimizer.lr",
                {"type": "loguniform", "low": 1e-4, "high": 1e-2, kv[0]: kv[1]},
            )
        ),
        # the whole distribution is not a mapping
        st.one_of(lists, st.integers(), st.text(), st.none()).map(lambda v: ("model.dropout", v)),
        # values the trainer refuses at the edges of the range
        st.integers(min_value=65_537).map(
            lambda n: ("batch_size", {"type": "choice", "values": [32, n]})
        ),
        st.integers(max_value=0).map(
            lambda n: ("batch_size", {"type": "int", "low": n, "high": 64})
        ),
        st.floats(min_value=1.0, max_value=1e300).map(
            lambda hi: ("model.dropout", {"type": "uniform", "low": 0.0, "high": hi})
        ),
        st.floats(min_value=10.001, max_value=1e300).map(
            lambda hi: ("optimizer.lr", {"type": "loguniform", "low": 1e-3, "high": hi})
        ),
        st.lists(junk_text, min_size=1, max_size=3).map(
            lambda v: ("model.name", {"type": "choice", "values": v})
        ),
        st.sampled_from([[[1]], [{"a": 1}], [None]]).map(
            lambda v: ("label_smoothing", {"type": "choice", "values": v})
        ),
        # keys that are not searchable trainer leaves
        st.sampled_from(["epochs", "optimizer", "model", "dataset", "optimizer.lr.x"]).map(
            lambda k: (k, {"type": "int", "low": 1, "high": 3})
        ),
        st.text(max_size=40)
        .filter(lambda k: k not in TRAINER_LEAVES)
        .map(lambda k: (k, {"type": "uniform", "low": 0.0, "high": 0.1})),
    )


@st.composite
def structural(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    spec = base_spec()
    kind = draw(
        st.sampled_from(
            ["param", "unknown_top", "unknown_section", "missing", "base", "base_epochs"]
        )
    )
    if kind == "param":
        key, param = draw(bad_params())
        spec["space"][key] = param
        return spec, "space"
    if kind == "unknown_top":
        key = draw(
            st.text(min_size=1, max_size=40).filter(lambda k: k not in SearchSpec.model_fields)
        )
        spec[key] = draw(any_value)
        return spec, "unknown config key"
    if kind == "unknown_section":
        section = draw(st.sampled_from(["searcher", "scheduler", "resources", "retrain"]))
        spec[section] = {**spec[section], draw(unknown_key): draw(any_value)}
        return spec, f"unknown config key '{section}."
    if kind == "missing":
        key = draw(st.sampled_from(["name", "space"]))
        del spec[key]
        return spec, f"'{key}'"
    if kind == "base_epochs":
        epochs = draw(st.integers().filter(lambda n: n != 3) | junk_text | lists)
        spec["base"] = {**spec["base"], "epochs": epochs}
        return spec, "base"
    path, value = draw(
        st.one_of(
            st.tuples(unknown_key, any_value),
            st.tuples(st.just("model/zz"), any_value),
            st.tuples(st.just("batch_size"), st.integers(max_value=0) | st.integers(65_537)),
            st.tuples(st.just("model/depth"), st.integers(min_value=7)),
            st.tuples(st.just("optimizer/lr"), st.floats(max_value=0.0) | st.floats(10.001)),
            st.tuples(st.just("dataset/name"), junk_text),
            st.tuples(st.just("model/name"), junk_text),
            st.tuples(st.just("dataset"), st.one_of(lists, st.integers(), junk_text)),
            st.tuples(
                st.just("optimizer/betas"), st.lists(st.floats(1.0, 10.0), min_size=2, max_size=2)
            ),
        )
    )
    base = copy.deepcopy(spec["base"])
    put(base, path, value)
    spec["base"] = base
    return spec, "base"


@settings(FUZZ, max_examples=200)
@given(case=wrong_values(), unicode=st.booleans(), cpu=st.booleans())
def test_wrong_types_and_out_of_range_values(
    case: tuple[dict[str, Any], str], unicode: bool, cpu: bool
) -> None:
    spec, needle = case
    assert_refused(dump(spec, unicode), needle, cpu)


@settings(FUZZ, max_examples=150)
@given(case=structural(), unicode=st.booleans(), cpu=st.booleans())
def test_bad_distributions_and_unknown_or_missing_keys(
    case: tuple[dict[str, Any], str], unicode: bool, cpu: bool
) -> None:
    spec, needle = case
    assert_refused(dump(spec, unicode), needle, cpu)


# ---- files that are not a mapping, or not YAML at all -----------------------------------------

BROKEN_LINES = [
    "\tname: tab-indented",  # a tab cannot start a token
    "[unclosed, flow",
    "{unclosed: flow",
    "*undefined_alias",
    "!!python/object/apply:os.system ['true']",
    "key: value: other",
    "%YAML 9.9",
    "@reserved",
    "`reserved",
    '"unterminated',
]
CONTROL = [chr(c) for c in (*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0xFFFE)]


@st.composite
def broken_files(draw: st.DrawFn) -> tuple[str | bytes, str | None]:
    lines = dump(base_spec(), unicode=False).splitlines()
    at = draw(st.integers(0, len(lines)))
    kind = draw(
        st.sampled_from(
            [
                "line",
                "control",
                "bytes",
                "top_list",
                "top_scalar",
                "empty",
                "deep",
                "digits",
                "flow_list",
            ]
        )
    )
    if kind == "line":
        lines.insert(at, draw(st.sampled_from(BROKEN_LINES)))
        return "\n".join(lines) + "\n", "YAML"
    if kind == "control":
        line = lines[min(at, len(lines) - 1)]
        cut = draw(st.integers(0, len(line)))
        lines[min(at, len(lines) - 1)] = line[:cut] + draw(st.sampled_from(CONTROL)) + line[cut:]
        return "\n".join(lines) + "\n", "YAML"
    if kind == "bytes":
        raw = "\n".join(lines).encode()
        bad = draw(st.sampled_from([b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]))
        return raw[: at * 3] + bad + raw[at * 3 :], "YAML"
    if kind == "top_list":
        items = draw(st.lists(any_value | st.just(base_spec()), max_size=3))
        return dump(items, draw(st.booleans())), "mapping"
    if kind == "top_scalar":
        value = draw(scalars.filter(lambda v: v is not None) | junk_text)
        return dump(value, draw(st.booleans())), "mapping"
    if kind == "empty":
        return draw(st.sampled_from(["", "\n", "   \n\n", "# only a comment\n", "---\n", "~\n"])), (
            "empty file"
        )
    if kind == "deep":
        depth = draw(st.integers(1, 5000))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
        lines.insert(at, "zz: " + opener * depth + "1" + closer * depth)
        return "\n".join(lines) + "\n", None  # unknown key, or too deep to read
    if kind == "digits":
        digits = draw(st.integers(6, 6000))
        sign = draw(st.sampled_from(["", "-"]))
        spec = base_spec()
        spec["num_samples"] = 0  # replaced below by the huge literal
        text = dump(spec, False).replace("num_samples: 0", f"num_samples: {sign}{'9' * digits}")
        return text, "num_samples" if digits <= 4300 else "YAML"
    # a top-level flow sequence, whatever follows it
    return "[" + draw(st.text(max_size=60)), None


@settings(FUZZ, max_examples=80)
@given(case=broken_files())
@example(case=("", "empty file"))
@example(case=("zz: " + "[" * 3000 + "]" * 3000 + "\n", None))
@example(case=(f"num_samples: {'9' * 5000}\n", "YAML"))
def test_not_yaml_or_not_a_mapping(case: tuple[str | bytes, str | None]) -> None:
    content, needle = case
    assert_refused(content, needle)


# ---- experiment names that would leave the results folder, or are not folder names -------------

NAME_CHARS = set(string.ascii_letters + string.digits + "._-")


def is_plain_name(name: str) -> bool:
    """The accepted names, defined independently of tuner.spec.NAME_PATTERN."""
    return (
        1 <= len(name) <= 100
        and name[0].isascii()
        and name[0].isalnum()
        and set(name) <= NAME_CHARS
        and name not in {".", ".."}
    )


ESCAPES = [
    "",
    ".",
    "..",
    "../x",
    "../../etc",
    "a/../../b",
    "a/b",
    "/etc/x",
    "/",
    "~/x",
    "~",
    "a\\b",
    "..\\x",
    "C:\\x",
    "a\x00b",
    "a\nb",
    "abc\n",
    "abc\r",
    "\nabc",
    " abc",
    "abc ",
    "-rf",
    ".hidden",
    "_x",
    "a" * 101,
    "a" * 10_000,
    "ａｂｃ",  # fullwidth letters
    "аbc",  # Cyrillic a
    "a\u2024\u2024b",  # one-dot leaders
    "a\u2215b",  # division slash
    "a\u2044b",  # fraction slash
    "\uff0e\uff0e",  # fullwidth full stops
    "ab\u200bc",  # zero-width space
    "é",
    "a\tb",
    "$HOME",
    "a:b",
]


@st.composite
def bad_names(draw: st.DrawFn) -> Any:
    plain = st.text(alphabet=sorted(NAME_CHARS), min_size=1, max_size=20)
    name = draw(
        st.one_of(
            st.sampled_from(ESCAPES),
            # a plain name joined to another by a path separator or "..", in any arrangement
            st.tuples(plain, st.sampled_from(["/", "\\", "/../", "\x00", "\n"]), plain).map(
                "".join
            ),
            st.tuples(st.sampled_from(["/", "../", "..\\", "~/", "./"]), plain).map("".join),
            st.text(min_size=0, max_size=120).filter(lambda n: not is_plain_name(n)),
            st.text(alphabet=sorted(NAME_CHARS), min_size=101, max_size=300),
            st.integers() | st.floats() | st.booleans() | st.none() | lists,  # not a string
        )
    )
    assert not (isinstance(name, str) and is_plain_name(name))
    return name


@settings(FUZZ, max_examples=120)
@given(name=bad_names(), unicode=st.booleans(), cpu=st.booleans())
def test_names_cannot_escape_the_results_folder(name: Any, unicode: bool, cpu: bool) -> None:
    spec = base_spec()
    spec["name"] = name
    assert_refused(dump(spec, unicode), "'name'", cpu)


@pytest.mark.parametrize("name", ESCAPES)
def test_each_listed_name_is_refused(name: str) -> None:
    spec = base_spec()
    spec["name"] = name
    err = assert_refused(dump(spec, unicode=True), "'name'")
    assert "folder name" in err


@pytest.mark.parametrize("name", ["a", "a" * 100, "v1.2_x-y", "9..a"])
def test_plain_names_still_validate(tmp_path: Path, name: str) -> None:
    spec = base_spec()
    spec["name"] = name
    path = tmp_path / "ok.yaml"
    path.write_text(dump(spec, unicode=False))
    assert call(["validate", str(path)])[0] == 0
