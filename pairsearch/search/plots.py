"""PNG plots of a study, drawn with matplotlib's object API (no pyplot, no backend).

Figures are made as ``matplotlib.figure.Figure`` and saved directly, so importing or
calling this module never changes matplotlib's global backend or state, and works
without a display.

- ``plot_boxplots``: the per-run accuracies of the best configurations, one box each
  (report 000's figure 2);
- ``plot_best_so_far``: best value so far against configurations trained;
- ``plot_generations`` (GA studies): accuracy, fitness and individuality per generation;
- ``plot_importance``: Optuna's hyperparameter importances (fANOVA) of the study.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import TrialState

from pairsearch.names import Attr
from pairsearch.search.store.queries import (
    best_distinct_trials,
    run_accuracies,
    stored_generations,
    trained_here,
)


def _label(params: dict) -> str:
    return "\n".join(f"{k}={v}" for k, v in params.items())


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def plot_boxplots(study: optuna.Study, path: Path, top: int = 10) -> Optional[Path]:
    """Box plot of the per-run accuracies of the ``top`` best distinct configurations."""
    trials = best_distinct_trials(study, top, with_runs=True)
    if not trials:
        return None
    labels = [f"#{t.number}\n{_label(t.params)}" for t in trials]
    longest = max(len(line) for label in labels for line in label.splitlines())
    figure = Figure(figsize=(max(6, len(trials) * max(1.3, 0.075 * longest)), 6))
    axis = figure.subplots()
    axis.boxplot([run_accuracies(t) for t in trials])
    axis.set_xticks(range(1, len(trials) + 1))
    axis.set_xticklabels(labels, fontsize=7)
    axis.set_ylabel("accuracy of each fold / run")
    axis.set_title(f"{study.study_name}:\naccuracy distribution of the {len(trials)} best "
                   "configurations", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def best_so_far(study: optuna.Study) -> pd.DataFrame:
    """Per finished trial: configurations trained so far and best value so far."""
    rows, best, trained = [], float("nan"), 0
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if not trial.state.is_finished():
            continue
        trained += trained_here(trial)
        if trial.state == TrialState.COMPLETE:
            best = trial.value if np.isnan(best) else max(best, trial.value)
        rows.append({"trial": trial.number, "trained": trained, "best": best})
    return pd.DataFrame(rows)


def plot_best_so_far(study: optuna.Study, path: Path) -> Optional[Path]:
    """Best value so far against configurations trained."""
    curve = best_so_far(study)
    if curve.empty or curve["best"].isna().all():
        return None
    figure = Figure(figsize=(7, 4.5))
    axis = figure.subplots()
    axis.step(curve["trained"], curve["best"], where="post")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("configurations trained")
    axis.set_ylabel(f"best {study.metric_names[0] if study.metric_names else 'value'} so far")
    axis.set_title(f"{study.study_name}: best value vs evaluations")
    axis.grid(alpha=0.3)
    return _save(figure, path)


def generations_table(study: optuna.Study) -> pd.DataFrame:
    """GA studies: mean and max accuracy, fitness and individuality per generation."""
    rows = [{"generation": generation, "accuracy": t.value or 0.0,
             "fitness": t.user_attrs[Attr.FITNESS],
             "individuality": t.user_attrs[Attr.INDIVIDUALITY]}
            for generation, members in stored_generations(study).items()
            for t in members.values()]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows).groupby("generation").agg(["mean", "max"])
    frame.columns = [f"{a}_{b}" for a, b in frame.columns]
    return frame.reset_index()


def plot_generations(study: optuna.Study, path: Path) -> Optional[Path]:
    """GA studies: accuracy, fitness and individuality (mean and max) per generation."""
    table = generations_table(study)
    if table.empty:
        return None
    figure = Figure(figsize=(14, 4.2))
    axes = figure.subplots(1, 3)
    for axis, name in zip(axes, ("accuracy", "fitness", "individuality")):
        axis.plot(table["generation"], table[f"{name}_mean"], marker="o", label="mean")
        axis.plot(table["generation"], table[f"{name}_max"], marker="^", label="max")
        axis.set_xlabel("generation")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{study.study_name}: genetic algorithm per generation")
    return _save(figure, path)


def plot_importance(study: optuna.Study, path: Path) -> tuple[Optional[Path], str]:
    """Optuna's fANOVA importances; returns (path or None, a note on why none)."""
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as error:
        return None, f"no parameter importance: {error}"
    if not importances:
        return None, "no parameter importance: the study varies no parameter"
    names = list(importances)[::-1]
    figure = Figure(figsize=(7, 0.5 * len(names) + 1.5))
    axis = figure.subplots()
    axis.barh(names, [importances[n] for n in names])
    axis.set_xlabel("importance for the study's value (fANOVA)")
    axis.set_title(f"{study.study_name}: parameter importance")
    return _save(figure, path), ""
