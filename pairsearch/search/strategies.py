"""Grid and TPE: two ways of choosing cells, both through ``Runner`` into one study.

Re-running the same command on the same ``--study`` continues it: the grid
evaluates only the cells not stored yet, TPE runs until the study holds N
finished trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from pairsearch.search.runner import Runner, SearchSettings, cell_key, distributions, diverged
from pairsearch.search.space import SearchSpace
from pairsearch.search.storage import open_study

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


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
    """

    study: str
    trials: int
    evaluated: int
    reused: int
    failed: int
    best_value: Optional[float]
    best_params: Optional[dict]


def summarize(study: optuna.Study, runner: Runner) -> SearchSummary:
    """Counts of this run and the study's best trial."""
    trials = study.get_trials(deepcopy=False, states=_FINISHED)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    return SearchSummary(study.study_name, len(trials), runner.evaluated, runner.reused,
                         runner.failed, best.value if best else None,
                         dict(best.params) if best else None)


def _progress(total: int, initial: int, label: str, enabled: bool) -> tqdm:
    return tqdm(total=total, initial=initial, desc=label, unit="trial", disable=not enabled,
                dynamic_ncols=True)


def _best_value(study: optuna.Study) -> Optional[float]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max((t.value for t in complete), default=None)


def run_grid(space: SearchSpace, settings: SearchSettings, storage: optuna.storages.BaseStorage,
             study_name: str, progress: bool = True) -> SearchSummary:
    """Evaluate every cell of ``space`` once (cells already stored are skipped).

    Args:
        space: The search space.
        settings: The protocol.
        storage: Optuna storage.
        study_name: Study to create or continue.
        progress: Show a progress bar with the best accuracy so far.

    Returns:
        A summary of the run.

    Raises:
        PairsearchError: If the study exists with another space or protocol, or on bad
            settings.
    """
    study = open_study(storage, study_name, {"strategy": "grid", "space": space.to_json(),
                                             "protocol": settings.protocol_meta()})
    runner = Runner(space, settings, study)
    dists = distributions(space)
    done = {cell_key(t.params) for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE or diverged(t)}
    bar = _progress(space.size, len(done), f"grid {study_name}", progress)
    best = _best_value(study)
    with bar:
        for cell in space.cells():
            if cell_key(cell) in done:
                continue
            study.enqueue_trial(cell)
            trial = study.ask(dists)
            value = runner.run(trial, cell)
            if value is not None and (best is None or value > best):
                best = value
            bar.set_postfix(best=f"{best:.4f}" if best is not None else "-")
            bar.update()
    return summarize(study, runner)


def run_tpe(space: SearchSpace, settings: SearchSettings, storage: optuna.storages.BaseStorage,
            study_name: str, trials: int, progress: bool = True) -> SearchSummary:
    """Optuna's TPE sampler until the study holds ``trials`` finished trials.

    A median pruner stops trials whose validation accuracy after an epoch is
    below the median of earlier trials at the same fold and epoch.

    Raises:
        PairsearchError: If the study exists with another space or protocol, or on bad
            settings.
    """
    sampler = optuna.samplers.TPESampler(seed=settings.search_seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    study = open_study(storage, study_name, {"strategy": "tpe", "space": space.to_json(),
                                             "protocol": settings.protocol_meta()},
                       sampler=sampler, pruner=pruner)
    runner = Runner(space, settings, study)
    dists = distributions(space)
    finished = len(study.get_trials(deepcopy=False, states=_FINISHED))
    bar = _progress(max(trials, finished), finished, f"tpe {study_name}", progress)
    best = _best_value(study)
    with bar:
        for _ in range(max(0, trials - finished)):
            trial = study.ask(dists)
            value = runner.run(trial, dict(trial.params), prune=True)
            if value is not None and (best is None or value > best):
                best = value
            bar.set_postfix(best=f"{best:.4f}" if best is not None else "-")
            bar.update()
    return summarize(study, runner)
