"""``pairsearch report``: a study as a Markdown page with PNG plots.

Plots (matplotlib, headless):

- ``accuracy_boxplots.png``: the per-run accuracies of the best configurations, one
  box each (report 000's figure 2);
- ``best_so_far.png``: best accuracy so far against configurations trained;
- ``generations.png`` (GA studies): accuracy, fitness and individuality per generation;
- ``importance.png``: Optuna's hyperparameter importances (fANOVA) of the study.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")  # headless: no display needed

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from pairsearch.errors import PairsearchError  # noqa: E402
from pairsearch.search.results import best_trials_table  # noqa: E402
from pairsearch.search.storage import study_meta  # noqa: E402


def _label(params: dict) -> str:
    return "\n".join(f"{k}={v}" for k, v in params.items())


def _run_accuracies(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Each fold's or run's accuracy (a retest's: each test run's)."""
    return trial.user_attrs.get("accuracies") or trial.user_attrs.get("test_accuracies") or []


def _distinct_best(study: optuna.Study, top: int) -> list[optuna.trial.FrozenTrial]:
    best, seen = [], set()
    for trial in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                        key=lambda t: (-t.value, t.number)):
        key = trial.user_attrs.get("config_key", str(trial.params))
        if key not in seen and _run_accuracies(trial):
            seen.add(key)
            best.append(trial)
        if len(best) == top:
            break
    return best


def plot_boxplots(study: optuna.Study, path: Path, top: int = 10) -> Optional[Path]:
    """Box plot of the per-run accuracies of the ``top`` best distinct configurations."""
    trials = _distinct_best(study, top)
    if not trials:
        return None
    labels = [f"#{t.number}\n{_label(t.params)}" for t in trials]
    longest = max(len(line) for label in labels for line in label.splitlines())
    figure, axis = plt.subplots(figsize=(max(6, len(trials) * max(1.3, 0.075 * longest)), 6))
    axis.boxplot([_run_accuracies(t) for t in trials])
    axis.set_xticks(range(1, len(trials) + 1))
    axis.set_xticklabels(labels, fontsize=7)
    axis.set_ylabel("accuracy of each fold / run")
    axis.set_title(f"{study.study_name}:\naccuracy distribution of the {len(trials)} best "
                   "configurations", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def best_so_far(study: optuna.Study) -> pd.DataFrame:
    """Per finished trial: configurations trained so far and best accuracy so far."""
    rows, best, trained = [], float("nan"), 0
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if not trial.state.is_finished():
            continue
        if "reused_from" not in trial.user_attrs and "duplicate_of" not in trial.user_attrs:
            trained += 1
        if trial.state == TrialState.COMPLETE:
            best = trial.value if np.isnan(best) else max(best, trial.value)
        rows.append({"trial": trial.number, "trained": trained, "best": best})
    return pd.DataFrame(rows)


def plot_best_so_far(study: optuna.Study, path: Path) -> Optional[Path]:
    """Best accuracy so far against configurations trained."""
    curve = best_so_far(study)
    if curve.empty or curve["best"].isna().all():
        return None
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.step(curve["trained"], curve["best"], where="post")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("configurations trained")
    axis.set_ylabel("best mean CV accuracy so far")
    axis.set_title(f"{study.study_name}: best accuracy vs evaluations")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def generations_table(study: optuna.Study) -> pd.DataFrame:
    """GA studies: mean and max accuracy, fitness and individuality per generation."""
    rows = [{"generation": t.user_attrs["generation"], "accuracy": t.value or 0.0,
             "fitness": t.user_attrs["fitness"], "individuality": t.user_attrs["individuality"]}
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                              TrialState.FAIL))
            if "generation" in t.user_attrs and "fitness" in t.user_attrs]
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
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for axis, name in zip(axes, ("accuracy", "fitness", "individuality")):
        axis.plot(table["generation"], table[f"{name}_mean"], marker="o", label="mean")
        axis.plot(table["generation"], table[f"{name}_max"], marker="^", label="max")
        axis.set_xlabel("generation")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{study.study_name}: genetic algorithm per generation")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_importance(study: optuna.Study, path: Path) -> tuple[Optional[Path], str]:
    """Optuna's fANOVA importances; returns (path or None, a note on why none)."""
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as error:
        return None, f"no parameter importance: {error}"
    if not importances:
        return None, "no parameter importance: the study varies no parameter"
    names = list(importances)[::-1]
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    axis.barh(names, [importances[n] for n in names])
    axis.set_xlabel("importance for the mean CV accuracy (fANOVA)")
    axis.set_title(f"{study.study_name}: parameter importance")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path, ""


def write_report(study: optuna.Study, out: Path, top: int = 10) -> Path:
    """Write ``out/report.md`` and its PNG plots; returns the Markdown path.

    Raises:
        PairsearchError: If ``out`` cannot be written or the study has no complete trial.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PairsearchError(f"cannot write report to {out}: {error.strerror}") from None
    table = best_trials_table(study, top)
    if table.empty:
        raise PairsearchError(f"study {study.study_name!r} has no complete trial to report")
    meta = study_meta(study)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    lines = [f"# Study `{study.study_name}`", ""]
    if meta:
        lines += [f"- strategy: {meta.get('strategy', '-')}",
                  f"- protocol: `{meta.get('protocol')}`"]
    lines += [f"- trials: {states.count(TrialState.COMPLETE)} complete, "
              f"{states.count(TrialState.FAIL)} failed, {states.count(TrialState.PRUNED)} "
              f"pruned, {states.count(TrialState.RUNNING)} running", "",
              f"## Best {len(table)} trials (value = mean CV accuracy)", "",
              table.to_markdown(index=False, floatfmt=".4f"), ""]
    plots = [("Accuracy distribution of the best configurations",
              plot_boxplots(study, out / "accuracy_boxplots.png", top)),
             ("Best accuracy vs evaluations", plot_best_so_far(study, out / "best_so_far.png"))]
    generations = plot_generations(study, out / "generations.png")
    if generations is not None:
        plots.append(("Genetic algorithm per generation", generations))
    importance, why = plot_importance(study, out / "importance.png")
    plots.append(("Parameter importance", importance))
    for title, path in plots:
        lines += [f"## {title}", ""]
        lines += [f"![{title}]({path.name})", ""] if path else [why or "not enough trials", ""]
    if generations is not None:
        lines += ["## Per generation", "",
                  generations_table(study).to_markdown(index=False, floatfmt=".4f"), ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
