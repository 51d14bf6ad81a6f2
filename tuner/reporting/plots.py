"""The report's figures, each one PNG from tables the search wrote (no Ray, no Optuna here).

Every function takes plain pandas/NumPy data and a path, saves one figure and closes it, so a
long report never holds dozens of open figures. Colours follow the trial's status everywhere,
so a pruned trial looks the same in the learning curves and in the hyperparameter plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainable.files import atomic
from trainable.vocab import Objective, Status
from tuner.spec import Param

# Known statuses get fixed colours; others (e.g. a new "diverged") take the next free ones.
STATUS_COLORS: dict[str, str] = {
    Status.COMPLETED: "tab:blue",
    Status.PRUNED: "tab:orange",
    Status.ERRORED: "tab:red",
}
SPARE_COLORS = ["tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
DPI = 100


def _pyplot() -> Any:
    """pyplot on the Agg backend, chosen here (not at import) so importing stays side-effect free."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def status_colors(statuses: Sequence[str]) -> dict[str, str]:
    colors = dict(STATUS_COLORS)
    spare = iter(SPARE_COLORS)
    for status in sorted(set(statuses) - set(colors)):
        colors[status] = next(spare, "black")
    return colors


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    try:
        fig.tight_layout()
        # "tight" keeps legends placed outside the axes inside the image
        with atomic.atomic_path(path) as tmp:  # format given: the temp name has no suffix
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return path


def learning_curves(rows: pd.DataFrame, metric: str, best_trial: str, path: Path) -> Path:
    """`metric` by epoch for every trial; a cross where a trial ended before the last epoch."""
    plt = _pyplot()
    colors = status_colors(rows["status"].unique().tolist())
    last_epoch = rows["epoch"].max()
    fig, ax = plt.subplots(figsize=(9, 5))
    for tid, group in rows.sort_values("epoch").groupby("trial_id", sort=False):
        status = str(group["status"].iloc[-1])
        is_best = tid == best_trial
        ax.plot(
            group["epoch"],
            group[metric],
            color=colors[status],
            alpha=1.0 if is_best else 0.55,
            linewidth=2.5 if is_best else 1.0,
            marker=".",
            zorder=3 if is_best else 2,
        )
        end = group.iloc[-1]
        if end["epoch"] < last_epoch:  # stopped early (ASHA's cut, a budget, an error)
            ax.plot(end["epoch"], end[metric], "x", color=colors[status], markersize=9, mew=2)
    for status, color in colors.items():
        if status in set(rows["status"]):
            ax.plot([], [], color=color, label=status)
    ax.plot([], [], "x", color="black", label="stopped before the last epoch")
    ax.plot([], [], color="black", linewidth=2.5, label=f"best trial ({best_trial})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{metric} of every trial by epoch")
    return _save(fig, path)


def _is_log(param: Param) -> bool:
    return param.type == "loguniform" or (param.type == "int" and param.log)


def param_vs_metric(
    trials: pd.DataFrame, space: Mapping[str, Param], metric_col: str, path: Path
) -> Path:
    """One panel per searched key: the trial's value against its best metric."""
    plt = _pyplot()
    colors = status_colors(trials["status"].unique().tolist())
    n = len(space)
    cols = min(n, 3)
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    rng = np.random.default_rng(0)  # fixed jitter: the same report twice gives the same PNG
    for ax, (key, param) in zip(axes.flat, space.items(), strict=False):
        col = f"config.{key}"
        data = trials.dropna(subset=[col, metric_col])
        if param.type == "choice":
            # Categorical: a box per value with the trials as jittered points over it.
            labels = [str(v) for v in param.values or []]
            pos = {label: i for i, label in enumerate(labels)}
            xs = data[col].astype(str).map(pos)
            groups = [data.loc[xs == i, metric_col].to_numpy() for i in range(len(labels))]
            ax.boxplot(groups, positions=range(len(labels)), widths=0.5, showfliers=False)
            ax.set_xticks(range(len(labels)), labels)
            x = xs.to_numpy(dtype=float) + rng.uniform(-0.15, 0.15, len(data))
        else:
            x = data[col].to_numpy(dtype=float)
            if _is_log(param):
                ax.set_xscale("log")
        ax.scatter(x, data[metric_col], c=[colors[s] for s in data["status"]], s=22, zorder=3)
        ax.set_xlabel(key + (" (log)" if _is_log(param) else ""))
        ax.set_ylabel(metric_col)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=c, label=s)
        for s, c in colors.items()
        if s in set(trials["status"])
    ]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles))
    return _save(fig, path)


def _axis_values(series: pd.Series, param: Param) -> tuple[np.ndarray, list[str]]:
    """A column scaled to 0..1 (log scale for log params, index for choices) and tick labels."""
    if param.type == "choice":
        labels = [str(v) for v in param.values or []]
        index = series.astype(str).map({v: i for i, v in enumerate(labels)}).to_numpy(float)
        return index / max(len(labels) - 1, 1), labels
    assert param.low is not None and param.high is not None  # validated by the spec
    low, high, values = param.low, param.high, series.to_numpy(float)
    if _is_log(param):
        low, high, values = np.log10(low), np.log10(high), np.log10(values)
    return (values - low) / (high - low), [f"{param.low:.3g}", f"{param.high:.3g}"]


def parallel_coordinates(
    trials: pd.DataFrame,
    space: Mapping[str, Param],
    metric_col: str,
    objective: Objective,
    path: Path,
) -> Path:
    """One line per trial across every searched key (at its range) and the metric; best on top."""
    plt = _pyplot()
    data = trials.dropna(subset=[metric_col])
    # Worst first, so the best trials are drawn last and stay visible.
    data = data.sort_values(metric_col, ascending=not objective.ascending)
    columns, ticks = [], []
    for key, param in space.items():
        values, labels = _axis_values(data[f"config.{key}"], param)
        columns.append(values)
        ticks.append(labels)
    metric = data[metric_col].to_numpy(float)
    span = np.ptp(metric) or 1.0
    columns.append((metric - metric.min()) / span)
    ticks.append([f"{metric.min():.3g}", f"{metric.max():.3g}"])
    names = [*space, metric_col]
    fig, ax = plt.subplots(figsize=(max(8, 1.8 * len(names)), 5))
    cmap = plt.get_cmap("viridis" if objective.sign > 0 else "viridis_r")
    color_at = (metric - metric.min()) / span
    xs = np.arange(len(names))
    for i in range(len(data)):
        ax.plot(xs, [c[i] for c in columns], color=cmap(color_at[i]), alpha=0.8, linewidth=1.5)
    for x, labels in zip(xs, ticks, strict=True):
        ax.axvline(x, color="gray", linewidth=0.8)
        for j, label in enumerate(labels):
            y = j / max(len(labels) - 1, 1)
            ax.annotate(label, (x, y), xytext=(4, 0), textcoords="offset points", fontsize=8)
    ax.set_xticks(xs, names, rotation=15)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(names) - 0.6)
    ax.set_title(f"every trial across the searched ranges, coloured by {metric_col}")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(metric.min(), metric.max()))
    fig.colorbar(sm, ax=ax, label=metric_col)
    return _save(fig, path)


def importances(values: Mapping[str, float], method: str, path: Path) -> Path:
    plt = _pyplot()
    keys = list(values)[::-1]  # largest at the top
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(keys) + 1.2))
    ax.barh(keys, [values[k] for k in keys], color="tab:green")
    ax.set_xlabel(f"importance ({method}, sums to 1)")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def per_class_accuracy(
    mean: Mapping[str, float], exported: Mapping[str, float], overall: float, path: Path
) -> Path:
    """Per-class test accuracy: mean over the retraining seeds, and the exported seed's."""
    plt = _pyplot()
    classes = list(mean)
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(classes) + 2), 4))
    ax.bar(x, [mean[c] for c in classes], color="tab:blue", label="mean over seeds")
    ax.plot(x, [exported[c] for c in classes], "D", color="black", label="exported seed")
    ax.axhline(overall, color="tab:red", linestyle="--", label=f"overall mean {overall:.1%}")
    ax.set_xticks(x, classes, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    return _save(fig, path)


def cost_tradeoff(
    trials: pd.DataFrame,
    metric_col: str,
    cost: str,
    front: Sequence[str],
    limits: tuple[float | None, float | None],
    path: Path,
) -> Path:
    """Each trial's best metric against one measured cost: feasible trials filled, the others
    hollow, the Pareto front's trials ringed, the constraint's limits as dashed lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ok = trials["feasible"].astype(bool)
    ax.scatter(trials.loc[ok, cost], trials.loc[ok, metric_col], color="tab:blue",
               label="meets every constraint")  # fmt: skip
    ax.scatter(trials.loc[~ok, cost], trials.loc[~ok, metric_col], facecolors="none",
               edgecolors="tab:gray", label="breaks one")  # fmt: skip
    on_front = trials["trial_id"].astype(str).isin(set(front))
    ax.scatter(trials.loc[on_front, cost], trials.loc[on_front, metric_col], s=140,
               facecolors="none", edgecolors="tab:red", label="Pareto front")  # fmt: skip
    for limit in limits:
        if limit is not None:
            ax.axvline(limit, color="tab:red", linestyle="--", alpha=0.6)
    ax.set_xlabel(cost)
    ax.set_ylabel(metric_col)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
