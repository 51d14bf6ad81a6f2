"""Every private Ray Tune, Ray core and Optuna name this project touches, in one place.

Each was needed because the public API has no way to do the same thing (the reason is at
each function). A Ray or Optuna upgrade that renames or reshapes one fails here, loudly,
with `CompatError` naming the name and the pinned versions; `tests/tuner/test_compat.py`
checks every one of them against the installed libraries, so CI catches it first.

May import Ray, Optuna and the standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Any

PINNED = "ray 2.60.0, optuna 5.0.0"


class CompatError(RuntimeError):
    """A private name of Ray or Optuna is gone or changed shape: a bug to fix here."""


def _get(obj: Any, name: str, kind: type | tuple[type, ...] | None = None) -> Any:
    try:
        value = getattr(obj, name)
    except AttributeError:
        raise CompatError(
            f"{type(obj).__name__}.{name} is gone (this code was written against {PINNED}); "
            "update tuner/compat.py"
        ) from None
    if kind is not None and value is not None and not isinstance(value, kind):
        raise CompatError(
            f"{type(obj).__name__}.{name} is a {type(value).__name__}, not {kind} "
            f"(written against {PINNED}); update tuner/compat.py"
        )
    return value


# --- Ray's OptunaSearch: its study and the Optuna trial behind each Tune trial ---------------
# Needed to tell Optuna a trial was pruned (Ray reports every ended trial as COMPLETE) and to
# seed the study (warm start, the base config first); OptunaSearch exposes neither.


def optuna_study(searcher: Any) -> Any:
    import optuna

    study = _get(searcher, "_ot_study", optuna.Study)
    if study is None:
        raise CompatError("OptunaSearch._ot_study is None: the searcher was made without a space")
    return study


def optuna_trials(searcher: Any) -> dict[str, Any]:
    """Tune trial id -> the Optuna trial Ray asked for it."""
    return dict(_get(searcher, "_ot_trials", dict))


def completed_trials(searcher: Any) -> set[str]:
    """The trial ids Ray already reported to Optuna (the live set: add to it)."""
    value: set[str] = _get(searcher, "_completed_trials", set)
    return value


# --- Tune internals -------------------------------------------------------------------------


def kept_checkpoints(manager: Any) -> list[Any]:
    """A trial's checkpoint manager's list of kept checkpoints: Tune has no public way to drop
    one whose folder it already deleted (tuner.search.run.ForgetDeletedCheckpoints)."""
    return list(_get(manager, "_checkpoint_results", list))


def set_kept_checkpoints(manager: Any, kept: list[Any]) -> None:
    _get(manager, "_checkpoint_results", list)
    manager._checkpoint_results = kept


def set_restored_callbacks(tuner: Any, callbacks: list[Any]) -> None:
    """A restored Tuner's callbacks: Tune restores the pickled ones (the previous process's)
    and has no public way to pass new ones to `Tuner.restore`. No-op in Ray Client mode."""
    local = _get(tuner, "_local_tuner")
    if local is not None:
        local.get_run_config().callbacks = callbacks


def reporter_metric(reporter: Any) -> str | None:
    """The metric a CLIReporter sorts by (given as `metric=`; no public getter)."""
    value: str | None = _get(reporter, "_metric", (str, type(None)))
    return value


def set_sort_by_metric(reporter: Any, on: bool) -> None:
    """CLIReporter sorts finished trials by their metric and raises on a trial without one;
    the switch is private."""
    _get(reporter, "_sort_by_metric", bool)
    reporter._sort_by_metric = on


def tune_interrupt_handler() -> Callable[[int, Any], Any] | None:
    """Tune's own SIGUSR1 handler while `fit()` runs: calling it saves Tune's state and makes
    `fit()` return, as Ctrl-C does (tuner.search.stopping). Not a public API: Tune installs it
    for its own use. None outside `fit()`."""
    handler = signal.getsignal(signal.SIGUSR1)
    return handler if callable(handler) else None


def tune_installs_interrupt_handler() -> bool:
    """Whether this Ray's Tune still installs a SIGUSR1 handler in `fit()` (checked by the
    tests: `tune_interrupt_handler` relies on it)."""
    from ray.tune import tune as tune_module

    return "SIGUSR1" in inspect.getsource(tune_module)


# Tune's warning when fit() returns after an interruption: it tells the user to call
# `Tuner.restore(..., trainable=...)`, which a command-line user cannot; the CLI prints the
# command that resumes instead.
TUNE_RESUME_HINT = "Resume experiment with:"
TUNE_LOGGER = "ray.tune.tune"


class _NoTuneResumeHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return TUNE_RESUME_HINT not in record.getMessage()


@contextlib.contextmanager
def without_tune_resume_hint() -> Iterator[None]:
    """Tune's own resume hint held back for the block (the logger's other records pass)."""
    logger, hint = logging.getLogger(TUNE_LOGGER), _NoTuneResumeHint()
    logger.addFilter(hint)
    try:
        yield
    finally:
        logger.removeFilter(hint)


def tune_prints_resume_hint() -> bool:
    """Whether this Ray's Tune still logs the hint `without_tune_resume_hint` drops, through
    the logger it filters (the tests check it)."""
    from ray.tune import tune as tune_module

    return (
        TUNE_RESUME_HINT in inspect.getsource(tune_module)
        and tune_module.logger.name == TUNE_LOGGER
    )


def is_disk_full_text(text: str) -> bool:
    """Tune sometimes hands an error over as text only (its pickled form unreadable): a full
    disk is then recognised by the OS's own words."""
    return f"[Errno {errno.ENOSPC}]" in text or "No space left" in text


# --- Ray core --------------------------------------------------------------------------------


def stop_forwarding_worker_output() -> None:
    """Stop printing the workers' output through the driver. Ray has no public switch; the
    handler's name is the one Ray itself removes at shutdown."""
    from ray._private import worker

    dispatcher = _get(worker, "global_worker_stdstream_dispatcher")
    _get(dispatcher, "remove_handler")("ray_print_logs")


def dashboard_missing() -> str | None:
    """Why Ray's dashboard cannot start here (a minimal Ray, without `ray[default]`, as the GPU
    kit carries), or None. Ray has no public check, and `ray.init(include_dashboard=True)` on a
    minimal Ray raises a bare Exception after logging a paragraph."""
    from ray._private import utils

    error = _get(utils, "get_dashboard_dependency_error")()
    return None if error is None else str(error)


# --- Ray's MLflow logger callback ------------------------------------------------------------


def mlflow_trial_runs(callback: Any) -> dict[Any, str]:
    """MLflowLoggerCallback's Tune trial -> MLflow run id map (the live dict): set to log a
    resumed trial into the run it had; Ray opens a new run per trial otherwise."""
    value: dict[Any, str] = _get(callback, "_trial_runs", dict)
    return value


# --- Optuna's hypervolume: only under a private name ----------------------------------------


def hypervolume(points: Any, reference: Any) -> float:
    """The hypervolume (minimisation) of `points` (n x m) bounded by `reference` (m,):
    Optuna's own routine, which its multi-objective samplers use but do not export."""
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(points, reference))
