"""Grid and TPE: two ways of choosing cells, both through ``Runner`` into one study.

Re-running the same command on the same ``--study`` continues it: the grid
evaluates only the cells not stored yet, TPE runs until the study holds N
finished trials. Both can run as several workers on one study.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from pairsearch.errors import PairsearchError
from pairsearch.search.runner import Runner, SearchSettings, cell_key, distributions, diverged
from pairsearch.search.space import SearchSpace
from pairsearch.search.storage import open_study
from pairsearch.search.workers import (
    NEVER,
    StopRequest,
    enqueue_owned,
    recover_dead_trials,
    worker_id,
)

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_CELL = "cell"  # user attribute: the cell a grid trial was queued for


@dataclass(frozen=True)
class SearchSummary:
    """What a search command did.

    Attributes:
        study: Study name.
        trials: Finished trials in the study.
        evaluated: Configurations trained by this run.
        reused: Trials answered from stored results by this run.
        failed: Trials of this run that failed (diverged).
        best_value: Best mean CV accuracy in the study, if any.
        best_params: Its cell.
        stopped: Whether the run stopped on request before finishing.
    """

    study: str
    trials: int
    evaluated: int
    reused: int
    failed: int
    best_value: Optional[float]
    best_params: Optional[dict]
    stopped: bool = False


def study_totals(storage: optuna.storages.BaseStorage, name: str) -> dict:
    """The study's finished trials and best trial, as ``SearchSummary`` fields."""
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False, states=_FINISHED)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {"trials": len(trials), "best_value": best.value if best else None,
            "best_params": dict(best.params) if best else None}


def summarize(study: optuna.Study, runner: Runner, stopped: bool = False) -> SearchSummary:
    """Counts of this run and the study's best trial."""
    return SearchSummary(study.study_name, evaluated=runner.evaluated, reused=runner.reused,
                         failed=runner.failed, stopped=stopped,
                         **study_totals(study._storage, study.study_name))


def _progress(total: int, initial: int, label: str, enabled: bool) -> tqdm:
    return tqdm(total=total, initial=initial, desc=label, unit="trial", disable=not enabled,
                dynamic_ncols=True)


def _best_value(study: optuna.Study) -> Optional[float]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max((t.value for t in complete), default=None)


def _cell_of(trial: optuna.trial.FrozenTrial) -> str:
    """The key of the cell a trial holds.

    A queued (WAITING) trial has no params yet, nor has a queued one just popped by
    ``ask``: Optuna sets them while ``ask`` runs. So the grid labels the trials it
    queues with their cell when it creates them (``_CELL``); trials stored without the
    label (by earlier versions) are known by their params.
    """
    return trial.user_attrs.get(_CELL) or cell_key(trial.params)


def _taken(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial holds its cell: done, being run, queued, or a stored failure."""
    return (trial.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
            or diverged(trial))


def duplicate_of(study: optuna.Study, trial: optuna.Trial) -> Optional[int]:
    """The lower-numbered trial holding the same cell, if any.

    Workers may both enqueue a cell; the rule "the lowest-numbered live trial of a
    cell runs it" needs no lock: trial numbers are unique and a trial's state only
    moves WAITING → RUNNING → finished, so every worker reaches the same verdict.
    """
    key = _cell_of(trial)
    for other in study.get_trials(deepcopy=False):
        if other.number < trial.number and _taken(other) and _cell_of(other) == key:
            return other.number
    return None


def run_grid(space: SearchSpace, settings: SearchSettings, storage: optuna.storages.BaseStorage,
             study_name: str, progress: bool = True, stop: StopRequest = NEVER,
             strategy: str = "grid") -> SearchSummary:
    """Evaluate every cell of ``space`` once (cells already stored are skipped).

    Several workers (processes, machines) may run this on the same study at once:
    each claims a missing cell by enqueuing it and asking for it, and a worker that
    finds a lower-numbered trial of the same cell drops its own (PRUNED with
    ``duplicate_of``), so no cell is evaluated twice to completion. A cell left
    queued (its worker died before asking, or lost the queue to others) is run by
    whichever worker asks next; RUNNING trials of dead workers are failed and their
    cells evaluated again.

    Args:
        space: The search space.
        settings: The protocol.
        storage: Optuna storage.
        study_name: Study to create or continue.
        progress: Show a progress bar with the best accuracy so far.
        stop: Checked between trials; stops the search when requested.
        strategy: Name stored with the study: ``grid``, or ``test`` for an experiment's
            measurement of every cell with the test protocol.

    Returns:
        A summary of the run.

    Raises:
        PairsearchError: If the study exists with another space or protocol, or on bad
            settings.
    """
    study = open_study(storage, study_name, {"strategy": strategy, "space": space.to_json(),
                                             "protocol": settings.protocol_meta()})
    runner = Runner(space, settings, study)
    dists = distributions(space)
    cells = list(space.cells())
    chooser = random.Random(worker_id())  # spreads workers over cells after a collision
    collided = False
    best = _best_value(study)
    bar = None
    try:
        while not stop.requested:
            recover_dead_trials(study)
            trials = study.get_trials(deepcopy=False)
            taken = {_cell_of(t) for t in trials if _taken(t)}
            missing = [c for c in cells if cell_key(c) not in taken]
            queued = any(t.state == TrialState.WAITING for t in trials)
            if bar is None:
                bar = _progress(len(cells), len(cells) - len(missing),
                                f"{strategy} {study_name}", progress)
            if not missing and not queued:
                break
            if missing:
                cell = chooser.choice(missing) if collided else missing[0]
                enqueue_owned(study, cell, {_CELL: cell_key(cell)})
            # ask pops the oldest queued cell, ours or another worker's. When other workers
            # emptied the queue since this worker last read it, Optuna samples a fresh trial
            # instead and a queued cell stays behind: the loop runs until none is left.
            trial = study.ask(dists)
            if _CELL not in trial.user_attrs:
                # Sampled, not queued: its cell was unknown to the others while ask ran, so
                # the duplicate rule cannot vouch for it. Drop it; the loop queues again.
                trial.set_user_attr("sampled", True)
                study.tell(trial, state=TrialState.PRUNED)
                continue
            earlier = duplicate_of(study, trial)
            if earlier is not None:
                trial.set_user_attr("duplicate_of", earlier)
                study.tell(trial, state=TrialState.PRUNED)
                collided = True
                continue
            value = runner.run(trial, dict(trial.params))
            best = _advance(bar, best, value)
    finally:
        if bar is not None:
            bar.close()
    return summarize(study, runner, stopped=stop.requested)


def _advance(bar: tqdm, best: Optional[float], value: Optional[float]) -> Optional[float]:
    """One more trial on the progress bar; returns the best value so far."""
    if value is not None and (best is None or value > best):
        best = value
    bar.set_postfix(best=f"{best:.4f}" if best is not None else "-")
    bar.update()
    return best


def run_tpe(space: SearchSpace, settings: SearchSettings, storage: optuna.storages.BaseStorage,
            study_name: str, trials: int, progress: bool = True,
            stop: StopRequest = NEVER) -> SearchSummary:
    """Optuna's TPE sampler until the study holds ``trials`` finished trials.

    A median pruner stops trials whose validation accuracy after an epoch is
    below the median of earlier trials at the same fold and epoch. Several workers
    may share the study (Optuna's ask/tell is made for that); together they stop
    at ``trials``.

    Raises:
        PairsearchError: If the study exists with another space or protocol, or on bad
            settings.
    """
    if space.budget is not None:
        raise PairsearchError("TPE samples any combination of values; it cannot keep to a "
                              "parameter [budget] (use grid)")
    sampler = optuna.samplers.TPESampler(seed=settings.search_seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    study = open_study(storage, study_name, {"strategy": "tpe", "space": space.to_json(),
                                             "protocol": settings.protocol_meta()},
                       sampler=sampler, pruner=pruner)
    runner = Runner(space, settings, study)
    dists = distributions(space)
    best = _best_value(study)
    bar = None
    try:
        while not stop.requested:
            recover_dead_trials(study)
            held = len(study.get_trials(deepcopy=False,
                                        states=(*_FINISHED, TrialState.RUNNING)))
            finished = len(study.get_trials(deepcopy=False, states=_FINISHED))
            if bar is None:
                bar = _progress(max(trials, finished), finished, f"tpe {study_name}", progress)
            if held >= trials:
                break
            trial = study.ask(dists)
            value = runner.run(trial, dict(trial.params), prune=True)
            best = _advance(bar, best, value)
    finally:
        if bar is not None:
            bar.close()
    return summarize(study, runner, stopped=stop.requested)
