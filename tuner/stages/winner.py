"""The `tables` stage: trials.parquet and summary.csv from Tune's results, the winner, and the
winner against the base config's own trial (the base is retrained when the winner's gain is
within the validation split's noise, `tuner.results.comparison`). Imports the spec, the
records and the results' tables; never the stages that call it.
"""

from __future__ import annotations

from typing import Any

from trainable.errors import UserError
from tuner.results.comparison import BaseComparison, Retrained
from tuner.results.records import SearchDone, TablesDone
from tuner.spec import SearchSpec
from tuner.stages.manifest import Manifest, SearchStatus


def tables_stage(search: Any, grid: Any, manifest: Manifest, val_images: int) -> TablesDone:
    """The tables and what later stages need from them (the config to retrain: the winner,
    or the base config when the winner's gain over it is within noise, or when no trial
    produced a result in a run with a whole-run budget); else one line if none did."""
    from tuner.results.tables import write_tables
    from tuner.search.progress import summary_line

    spec = search.spec
    grid = grid if grid is not None else search.results_grid()
    objective = spec.scheduler.objective
    done = manifest.record("search", SearchDone)
    rows, summary = write_tables(
        grid,
        search.results,
        objective,
        spec.time_budget_s,
        spec.constraints,
        done.ended_by_patience,
    )
    wall_s = done.wall_s
    line = summary_line(summary, objective.metric, wall_s)
    print(f"\nsearch done: {line}", flush=True)
    best_col = f"best_{objective.metric}"
    spent: dict[str, Any] = {  # what the search spent, whatever it found
        "summary": line,
        "trials": len(summary),
        "trial_status_counts": summary["status"].value_counts().to_dict() if len(summary) else {},
        "epochs_spent": len(rows),
        "metric": objective.metric,
    }
    if summary.empty or summary[best_col].isna().all():
        return _no_result(spec, manifest, search.results.summary, spent)
    if spec.constraints:
        summary = _feasible_only(summary, best_col, spec, manifest, search.results.summary)
    best = summary.iloc[0]
    comparison, base_params = compare_with_base(spec, rows, summary, val_images)
    best_params = search.params_of(str(best["trial_id"]), grid)
    return TablesDone(
        **spent,
        versus_base=comparison,
        retrained=Retrained.WINNER if base_params is None else Retrained.BASE,
        best_trial_id=str(best["trial_id"]),
        best_value=float(best[best_col]),
        search_best_params=best_params,
        best_params=best_params if base_params is None else base_params,
    )


def _no_result(
    spec: SearchSpec, manifest: Manifest, where: Any, spent: dict[str, Any]
) -> TablesDone:
    """No trial reported a finite score. A run with a whole-run budget promised a model in
    that time and has the base config (the default a run without search trains): it trains
    that, and says so. Otherwise, one line: nothing to retrain."""
    objective = spec.scheduler.objective
    within = f" within time_budget_s={spec.time_budget_s:g}" if spec.time_budget_s else ""
    what = f"no trial reported a finite {objective.metric}{within}"
    point, _ = spec.base_point()
    if spec.budget is None or point is None:
        manifest.update(status=SearchStatus.FAILED)
        raise UserError(f"{what}: nothing to retrain; the reasons are in {where} (column 'reason')")
    print(f"{what}: the final training uses the base config (the reasons: {where})", flush=True)
    return TablesDone(
        **spent,
        retrained=Retrained.BASE,
        best_trial_id=None,
        best_value=None,
        search_best_params={},
        best_params=point,
    )


def compare_with_base(
    spec: SearchSpec, rows: Any, summary: Any, val_images: int
) -> tuple[BaseComparison | None, dict[str, Any] | None]:
    """The winner against the base config's own trial (printed, and kept in the manifest),
    and the base's values when they, not the winner's, are to be retrained.

    With no comparison because the base trial never reported (on a slow machine the search's
    seconds ended first: `no_result`), a run with a whole-run budget trains the base config: a
    winner the search never measured against the default has not beaten it, and that run
    promises a model no worse than the default. A base trial that failed (diverged, errored)
    is beaten; a hand-written search keeps its winner, and so does a search under constraints
    (the base config may not meet them)."""
    from tuner.results.tables import base_comparison, base_unmeasured

    point, _ = spec.base_point()
    objective = spec.scheduler.objective
    if point is None:
        return None, None
    found = base_comparison(rows, summary, point, objective, spec.retrain.min_gain, val_images)
    if found is None:
        if spec.budget is None or spec.constraints or not base_unmeasured(summary, point):
            return None, None
        print(
            "the base config's trial ended before it reported an epoch: nothing to compare the "
            "winner with, so the final training uses the base config",
            flush=True,
        )
        return None, point
    print(found.line(), flush=True)
    keep_base = found.base_trial_id == found.best_trial_id or not found.winner_kept
    return found, point if keep_base else None


def _feasible_only(
    summary: Any, best_col: str, spec: SearchSpec, manifest: Manifest, where: Any
) -> Any:
    """The trials that met every constraint, best first; one line if none did. The winner is
    chosen, and compared with the base config, among these only."""
    from tuner.results.constraints import FEASIBLE, describe

    feasible = summary[summary[FEASIBLE] & summary[best_col].notna()]
    limits = describe(spec.constraints)
    if feasible.empty:
        manifest.update(status=SearchStatus.FAILED)
        raise UserError(
            f"no trial met the constraints ({limits}): nothing to retrain; each trial's measured "
            f"costs are in {where}; loosen the constraints or search smaller models"
        )
    print(f"{len(feasible)} of {len(summary)} trials met the constraints ({limits})", flush=True)
    return feasible.reset_index(drop=True)
