"""Questions asked of stored trials and studies, in one place.

What a trial *is* (a result, a low-budget result, diverged, crashed, finished), the
best trials, counts and names. Every reader (the driver, the trial evaluator, the
strategies, tables, reports, retests, experiment chains) asks here, so they agree on
what "a stored result" or "the best distinct configuration" of a study is. The trial
attribute names are ``Attr``'s constants (``pairsearch.names``).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Optional

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from pairsearch.names import Attr
from pairsearch.search.space import space_from_dict
from pairsearch.search.store.storage import study_meta

__all__ = ["FINISHED", "RETEST_SUFFIX", "Attr", "architecture_of", "best_distinct_trials",
           "best_trial", "best_value", "config_key_of", "crashed", "diverged",
           "finished_count", "full_budget_trials", "holds_claim", "rung_summary",
           "best_by_group", "stored_generations", "trained_here", "is_result", "low_budget_result",
           "result_value", "retest_study_name", "run_accuracies", "state_counts",
           "trial_seconds", "unfinished_cells"]

RETEST_SUFFIX = "-retest"

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
"""The states of a finished trial."""


# --- What a trial is ---------------------------------------------------------------------

def diverged(trial: FrozenTrial) -> bool:
    """A FAIL trial whose configuration diverged (a result, not an accident to redo)."""
    return trial.state == TrialState.FAIL and Attr.FAIL_REASON in trial.user_attrs


def crashed(trial: FrozenTrial) -> bool:
    """Failed because its worker died (a kill, a lost machine) or was interrupted, not on
    its own: it keeps no ``fail_reason``, its cell is trained again later, and its stored
    end is when another run noticed, not when it stopped working."""
    return trial.state == TrialState.FAIL and Attr.FAIL_REASON not in trial.user_attrs


def low_budget_result(trial: FrozenTrial) -> bool:
    """A PRUNED trial that trained to the end of a budget below the protocol's (a halving
    rung's result): it has its accuracies, where a trial the pruner stopped has none."""
    attrs = trial.user_attrs
    return trial.state == TrialState.PRUNED and bool(attrs.get(Attr.ACCURACIES)) \
        and Attr.DUPLICATE_OF not in attrs and Attr.SAMPLED not in attrs


def is_result(trial: FrozenTrial) -> bool:
    """A stored result: a trial that trained to the end of its budget (COMPLETE with its
    accuracies, or a low-budget result) or whose configuration diverged."""
    if trial.state == TrialState.COMPLETE:
        return bool(trial.user_attrs.get(Attr.ACCURACIES))
    return low_budget_result(trial) or diverged(trial)


def result_value(trial: FrozenTrial) -> Optional[float]:
    """A stored result's mean CV accuracy (``None``: diverged). A low-budget result's
    value is the mean of its accuracies (Optuna's value of a PRUNED trial is its last
    report, which a reused result may not have)."""
    if diverged(trial):
        return None
    if trial.state == TrialState.COMPLETE:
        return trial.value
    return float(np.mean(trial.user_attrs[Attr.ACCURACIES]))


def holds_claim(trial: FrozenTrial) -> bool:
    """Whether a trial holds its claim: done, being run, queued, or a stored result."""
    return trial.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING) \
        or is_result(trial)


def trained_here(trial: FrozenTrial) -> bool:
    """Whether a finished trial trained (not a reused result, a dropped duplicate or a
    dropped sample): what a search's cost counts."""
    return not ({Attr.REUSED_FROM, Attr.DUPLICATE_OF, Attr.SAMPLED} & set(trial.user_attrs))


def finished_count(study: optuna.Study, running: bool = False) -> int:
    """Finished trials of the study (with ``running``, those running too)."""
    states = FINISHED + ((TrialState.RUNNING,) if running else ())
    return len(study.get_trials(deepcopy=False, states=states))


# --- Questions of a study ----------------------------------------------------------------


def retest_study_name(study_name: str) -> str:
    """The study a retest of ``study_name`` writes to."""
    return f"{study_name}{RETEST_SUFFIX}"


def config_key_of(trial: FrozenTrial) -> str:
    """The configuration a trial trained (its ``config_key``; its params for trials stored
    without one)."""
    return trial.user_attrs.get(Attr.CONFIG_KEY) or str(sorted(trial.params.items()))


def architecture_of(trial: FrozenTrial) -> Optional[str]:
    """The trial's family (a conditional space) or model (a flat one), if its cell names one."""
    value = trial.params.get("family", trial.params.get("model"))
    return None if value is None else str(value)


def best_distinct_trials(study: optuna.Study, top: Optional[int] = None,
                         with_runs: bool = False,
                         per_architecture: Optional[int] = None) -> list[FrozenTrial]:
    """Complete trials, best first, one per configuration (the first that reached a value).

    Ties go to the lower trial number. With ``with_runs``, only trials that stored their
    per-run accuracies (those a box plot can show).

    Args:
        study: The study.
        top: How many (all when ``None``).
        with_runs: Keep only trials with per-run accuracies.
        per_architecture: At most this many of one family or model (``architecture_of``):
            the best of several architectures rather than near-copies of the first.
    """
    best: list[FrozenTrial] = []
    seen: set[str] = set()
    counts: dict[Optional[str], int] = {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for trial in sorted(complete, key=lambda t: (-t.value, t.number)):
        key = config_key_of(trial)
        if key in seen or (with_runs and not run_accuracies(trial)):
            continue
        architecture = architecture_of(trial)
        if per_architecture is not None and counts.get(architecture, 0) >= per_architecture:
            continue
        counts[architecture] = counts.get(architecture, 0) + 1
        seen.add(key)
        best.append(trial)
        if top is not None and len(best) == top:
            break
    return best


def best_trial(study: optuna.Study) -> Optional[FrozenTrial]:
    """The best complete trial (lowest number among ties), or ``None``."""
    found = best_distinct_trials(study, 1)
    return found[0] if found else None


def best_value(study: optuna.Study) -> Optional[float]:
    """The best complete value, or ``None``."""
    trial = best_trial(study)
    return None if trial is None else trial.value


def run_accuracies(trial: FrozenTrial) -> list[float]:
    """Each fold's or run's accuracy stored with a trial."""
    return trial.user_attrs.get(Attr.ACCURACIES) or trial.user_attrs.get(Attr.TEST_ACCURACIES) \
        or []


def trial_seconds(trial: FrozenTrial) -> float:
    """A finished trial's duration in seconds; 0 for an unfinished or crashed one."""
    if trial.datetime_start is None or trial.datetime_complete is None or crashed(trial):
        return 0.0
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def unfinished_cells(study: optuna.Study) -> Optional[tuple[int, int]]:
    """(cells finished, cells in the space) of a grid or test study still under way, else
    ``None`` (complete, or not a study that covers a space)."""
    meta = study_meta(study)
    if meta.get("strategy") not in ("grid", "test") or "space" not in meta:
        return None
    try:
        cells = space_from_dict("stored", json.loads(meta["space"])).size
    except Exception:  # a space stored by another version: nothing to say
        return None
    finished = sum(1 for t in study.get_trials(deepcopy=False)
                   if t.state.is_finished() and not crashed(t))
    return (finished, cells) if finished < cells else None


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state: ``complete``, ``failed``, ``pruned``, ``running``, ``waiting``."""
    counts = Counter(t.state for t in study.get_trials(deepcopy=False))
    return {"complete": counts[TrialState.COMPLETE], "failed": counts[TrialState.FAIL],
            "pruned": counts[TrialState.PRUNED], "running": counts[TrialState.RUNNING],
            "waiting": counts[TrialState.WAITING]}


def best_by_group(study: optuna.Study, group_key: Optional[str]) -> dict[str, dict[str, Any]]:
    """The best complete trial's params for each value of ``group_key`` (variant or model);
    with ``None``, the overall best as group ``all``. Ties go to the earlier trial."""
    best: dict[str, FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        group = str(trial.params.get(group_key, "all")) if group_key else "all"
        if group not in best or trial.value > best[group].value:
            best[group] = trial
    return {group: dict(trial.params) for group, trial in best.items()}


# --- Halving studies ---------------------------------------------------------------------

def full_budget_trials(study: optuna.Study) -> list[FrozenTrial]:
    """A halving study's trials of its last rung reached: the configurations that survived
    every rung, trained at the full budget."""
    top = max((t.user_attrs.get(Attr.RUNG, -1) for t in study.get_trials(deepcopy=False)),
              default=-1)
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get(Attr.RUNG) == top]


def rung_summary(study: optuna.Study) -> list[dict]:
    """Per rung of a halving study: its budget, configurations trained, best value."""
    rows: dict[int, dict] = {}
    for trial in study.get_trials(deepcopy=False):
        rung = trial.user_attrs.get(Attr.RUNG)
        if rung is None or not is_result(trial) or result_value(trial) is None:
            continue
        row = rows.setdefault(rung, {Attr.RUNG: rung, Attr.BUDGET: trial.user_attrs[Attr.BUDGET],
                                     "configurations": 0, "best": 0.0})
        row["configurations"] += 1
        row["best"] = max(row["best"], result_value(trial))
    return [rows[r] for r in sorted(rows)]


# --- Genetic studies ---------------------------------------------------------------------

def stored_generations(study: optuna.Study) -> dict[int, dict[int, FrozenTrial]]:
    """A GA study's evaluated individuals: generation → individual → trial (those told
    with their fitness)."""
    generations: dict[int, dict[int, FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False, states=FINISHED):
        attrs = trial.user_attrs
        if Attr.GENERATION in attrs and Attr.FITNESS in attrs:
            generations.setdefault(attrs[Attr.GENERATION], {})[attrs[Attr.INDIVIDUAL]] = trial
    return generations
