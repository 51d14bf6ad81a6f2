"""`python -m tuner report RESULTS_DIR`: one self-contained HTML page about a finished search.

Writes `RESULTS_DIR/report/report.html` with every figure embedded as a base64 data URI (the
file can be mailed or attached to a ticket on its own) and the same figures as PNGs beside it.
All numbers come from the files the search wrote: manifest.json, trials.parquet, the Optuna
journal and best/ (the retrained model's test metrics).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainable.files import atomic
from trainable.training.metrics import plot_confusion
from tuner.reporting import plots
from tuner.results.catalog import Experiment, open_experiment, overview, read_rows, trial_table

log = logging.getLogger(__name__)

HOW_TO_READ = """Each trial trained one configuration drawn by Optuna's TPE sampler; ASHA stopped
the trials that trailed at a checkpoint epoch (a rung), so most trials ran only a few epochs.
Read the learning curves first: a cross marks a trial stopped early. The hyperparameter plots
show each trial's best validation score against the value it used: a clear trend says the range
matters; a flat cloud says it barely does, and points piled at an edge of the range say the
range may be too narrow. The importances rank the searched keys (a rough hint with few finished
trials). The winner's configuration (or the base config's, when no trial beat it by more than
the validation noise) was then retrained from scratch, once per seed, and evaluated once on the
test split: that figure (mean ± std over the seeds) is the number to quote, not the best
validation score, which was picked as the maximum over many trials and is optimistic."""

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.8em}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em}
dt{font-weight:600}dd{margin:0}img{max-width:100%}.note{background:#fff6dd;padding:.6em .9em;
border-left:4px solid #e0a800}.how{background:#eef4fb;padding:.6em .9em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;
text-align:right}td:last-child{text-align:left;white-space:nowrap}th{background:#f3f3f3}p.caption{color:#555;font-size:.9em}
.pair{display:flex;gap:1em;align-items:flex-start}.pair img{max-width:50%}"""


def _section(title: str, body: str, anchor: str) -> str:
    return f'<h2 id="{anchor}">{html.escape(title)}</h2>\n{body}\n'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _header(exp: Experiment, trials: pd.DataFrame) -> str:
    m, o = exp.manifest, exp.outcome
    facts = overview(exp)
    facts["trials by status"] = ", ".join(
        f"{n} {s}" for s, n in trials["status"].value_counts().items()
    )
    if o is not None and o.search_wall_s is not None:
        retrain_s = o.retrain_wall_s or 0.0
        facts["wall time"] = (
            f"{(o.search_wall_s + retrain_s) / 60:.1f} min (search {o.search_wall_s / 60:.1f}, "
            f"retraining {retrain_s / 60:.1f})"
        )
    facts["searched keys"] = ", ".join(exp.spec.space)
    facts["scheduler"] = (
        f"{exp.spec.scheduler.kind}, {exp.metric} ({exp.mode}), "
        f"max_t {exp.spec.scheduler.max_t} epochs"
    )
    facts["data"] = str(m.get("data_provenance", "not recorded"))
    facts["results folder"] = str(exp.path)
    rows = "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts.items()
    )
    out = f"<h1>Search report: {html.escape(exp.spec.name)}</h1>\n<dl>{rows}</dl>\n"
    if "jpeg" in facts["data"].lower():
        out += _note(
            "The data is a JPEG copy of CIFAR-10 (lossy): accuracies are not directly comparable "
            "with results on the original PNG/pickle CIFAR-10."
        )
    if exp.status != "finished":
        out += _note(f"This search's status is '{exp.status}': some sections may be missing.")
    return out + f'<p class="how"><b>How to read this.</b> {html.escape(HOW_TO_READ)}</p>\n'


def _importances(exp: Experiment, out: Path) -> str:
    """Optuna's parameter importances, or a note saying why there are none (never an exception)."""
    import warnings

    import optuna

    from tuner.search.study import load_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = load_study(exp.path, exp.spec.name)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(done) < 2:
            return _note(
                f"No importances: Optuna needs at least 2 completed trials and this search has "
                f"{len(done)} (trials stopped by ASHA count as pruned and are left out)."
            )
        # Optuna's default evaluator, named explicitly so the caption cannot drift from it.
        # It warns (instead of failing) when the trials cannot separate the keys: keep those.
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except Exception as err:  # a report without this panel beats no report
        log.warning("parameter importances failed: %s", err)
        return _note(
            f"No importances: Optuna could not compute them ({type(err).__name__}: {err})."
        )
    said = " ".join(dict.fromkeys(str(w.message) for w in caught))
    if len(set(values.values())) <= 1:  # all equal: nothing to rank
        return _note(f"No importances from the {len(done)} completed trials: {said or 'all equal'}")
    path = plots.importances(values, "PED-ANOVA", out / "importances.png")
    caption = (
        f"Computed by Optuna (PED-ANOVA) from the {len(done)} completed trials only; pruned "
        "trials are left out. With few completed trials, treat the ranking as a rough hint."
        + (f" Optuna warned: {said}" if said else "")
    )
    return _img(path, "parameter importances") + f'<p class="caption">{html.escape(caption)}</p>'


def _test_split(exp: Experiment, out: Path) -> str:
    metrics_path = exp.results.test_metrics / "metrics.json"
    summary = exp.test_summary()
    if summary is None or not metrics_path.is_file():
        return _note("No retrained model yet: best/ is written after the search finishes.")
    metrics = json.loads(metrics_path.read_text())
    classes = metrics["confusion_matrix"]["classes"]
    cm = np.asarray(metrics["confusion_matrix"]["rows_true_cols_pred"])
    seed = summary["exported_seed"]
    cm_path = out / "confusion_matrix.png"
    plot_confusion(
        cm, classes, cm_path, f"exported seed {seed}: accuracy {metrics['accuracy']:.2%}"
    )
    means = {c: v["accuracy"] for c, v in summary["per_class_mean_over_seeds"].items()}
    exported = {c: v["accuracy"] for c, v in metrics["per_class"].items()}
    bars = plots.per_class_accuracy(
        means, exported, summary["test_accuracy_mean"], out / "per_class_accuracy.png"
    )
    by_seed = ", ".join(f"seed {s}: {a:.2%}" for s, a in summary["test_accuracy_by_seed"].items())
    n = len(summary["test_accuracy_by_seed"])
    # After a refit no validation split is left: the first seed is exported, not the best.
    chosen = (
        "the first (a refit leaves no validation score)"
        if summary.get("refit")
        else "chosen by its validation score"
    )
    text = (
        f"The configuration retrained for {summary['epochs']} epochs with {n} "
        f"seed{'s' if n != 1 else ''} ({by_seed}); the exported checkpoint is seed {seed}, "
        f"{chosen}. Confusion matrix: rows are true classes, columns predicted, shade is the "
        "row's fraction."
    )
    pair = _img(cm_path, "confusion matrix") + _img(bars, "per-class test accuracy")
    return f'<p>{html.escape(text)}</p><div class="pair">{pair}</div>'


def _constraints(exp: Experiment, trials: pd.DataFrame, out: Path) -> str:
    """The feasible set and the Pareto front on the metric and the constrained costs."""
    from tuner.results.constraints import FEASIBLE, describe, pareto_front

    metric_col = f"best_{exp.metric}"
    keys = [k for k in exp.spec.constraints if k in trials.columns]
    if FEASIBLE not in trials.columns or not keys:
        return _note("No trial measured the constrained costs.")
    front = pareto_front(trials, metric_col, exp.objective.sign, keys)
    ids = front["trial_id"].astype(str).tolist()
    text = (
        f"{int(trials[FEASIBLE].sum())} of {len(trials)} trials met the constraints "
        f"({describe(exp.spec.constraints)}); the winner is the best of these. The Pareto "
        f"front ({len(front)} trials) holds the trials that no other trial beats on "
        f"{exp.metric} and on {', '.join(keys)} at once."
    )
    images = ""
    for key in keys:
        bound = exp.spec.constraints[key]
        path = plots.cost_tradeoff(
            trials, metric_col, key, ids, (bound.min, bound.max), out / f"cost_{key}.png"
        )
        images += _img(path, f"{exp.metric} against {key}")
    shown = front[["trial_id", metric_col, *keys, FEASIBLE]]
    return f"<p>{html.escape(text)}</p>{images}" + _table(shown, metric_col, len(shown))


def _table(trials: pd.DataFrame, metric_col: str, top: int) -> str:
    shown = trials.head(top).rename(columns=lambda c: c.removeprefix("config."))
    floats: dict[str | int, Callable[[Any], str]] = {
        c: (lambda v: f"{v:.4g}")
        for c in shown.columns
        if pd.api.types.is_float_dtype(shown[c]) and c != metric_col
    }
    floats[metric_col] = lambda v: f"{v:.4f}"
    return shown.to_html(index=False, formatters=floats, na_rep="-", classes="trials", border=0)


def build(results_dir: Path, top: int = 10) -> Path:
    """Write the report folder; returns the path of report.html."""
    exp = open_experiment(results_dir)
    rows = read_rows(exp)  # raises a one-line error while the search has not ended
    trials = trial_table(exp)
    out = exp.results.report
    out.mkdir(exist_ok=True)
    metric_col = f"best_{exp.metric}"
    best_trial = str(trials["trial_id"].iloc[0]) if len(trials) else ""
    space, parts = exp.spec.space, [_header(exp, trials)]
    if rows.empty:
        parts.append(_note("No trial reported an epoch: there is nothing to plot."))
    else:
        curves = plots.learning_curves(rows, exp.metric, best_trial, out / "learning_curves.png")
        params = plots.param_vs_metric(trials, space, metric_col, out / "params.png")
        parallel = plots.parallel_coordinates(
            trials, space, metric_col, exp.objective, out / "parallel_coordinates.png"
        )
        parts += [
            _section("Learning curves", _img(curves, "learning curves"), "curves"),
            _section(f"Hyperparameters vs. best {exp.metric}", _img(params, "params"), "params"),
            _section("Parallel coordinates", _img(parallel, "parallel coordinates"), "parallel"),
        ]
    if exp.spec.constraints and len(trials):
        parts.append(_section("Constraints", _constraints(exp, trials, out), "constraints"))
    parts.append(_section("Parameter importances", _importances(exp, out), "importances"))
    parts.append(
        _section("Retrained best configuration on the test split", _test_split(exp, out), "test")
    )
    caption = (
        f'<p class="caption">{metric_col}: the best {exp.metric} a trial reached at any epoch '
        "(from trials.parquet); epochs: how many it ran.</p>"
    )
    table = _table(trials, metric_col, top)
    parts.append(_section(f"Top {min(top, len(trials))} trials", caption + table, "top"))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    body = "\n".join(parts) + f'<p class="caption">Generated {stamp} by python -m tuner report.</p>'
    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(exp.spec.name)}: search report</title><style>{CSS}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
    path = out / "report.html"
    atomic.write_text(path, page)
    return path
