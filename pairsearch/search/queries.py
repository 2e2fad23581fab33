"""Questions asked of stored studies, in one place: best trials, counts, names.

Every reader (tables, reports, retests, experiment chains) asks here, so they agree
on what "the best distinct configuration" of a study is.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

from pairsearch.search.space import space_from_dict
from pairsearch.search.storage import study_meta

RETEST_SUFFIX = "-retest"


def retest_study_name(study_name: str) -> str:
    """The study a retest of ``study_name`` writes to."""
    return f"{study_name}{RETEST_SUFFIX}"


def config_key_of(trial: FrozenTrial) -> str:
    """The configuration a trial trained (its ``config_key``; its params for trials stored
    without one)."""
    return trial.user_attrs.get("config_key") or str(sorted(trial.params.items()))


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
    return trial.user_attrs.get("accuracies") or trial.user_attrs.get("test_accuracies") or []


def crashed(trial: FrozenTrial) -> bool:
    """Failed because its worker died (a kill, a lost machine), not on its own: it keeps no
    ``fail_reason``, its cell is trained again later, and its stored end is when another
    run noticed, not when it stopped working."""
    return trial.state == TrialState.FAIL and "fail_reason" not in trial.user_attrs


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
