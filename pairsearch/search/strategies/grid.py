"""The exhaustive grid: every cell of the space once, proposed to the driver.

Re-running the same command on the same ``--study`` continues it: the grid evaluates
only the cells not stored yet. Several workers can share one study.
"""

from __future__ import annotations

import random
from typing import Sequence

import optuna
from optuna.trial import TrialState

from pairsearch.names import Attr
from pairsearch.search.driver import SearchSummary, claim_of, drive
from pairsearch.search.space import SearchSpace
from pairsearch.search.store.queries import holds_claim
from pairsearch.search.strategies.base import Strategy, Wait, wait_for_others
from pairsearch.search.types import Proposal, SearchSettings, cell_key
from pairsearch.search.workers import NEVER, StopRequest, worker_id

__all__ = ["GridStrategy", "run_grid"]


class GridStrategy(Strategy):
    """Every cell of the space once: proposes the cells no trial holds yet.

    Several workers (processes, machines) may share the study: each claims a missing
    cell by queuing it (``Proposal.claim``), and a worker that finds a lower-numbered
    trial of the same cell drops its own, so no cell is evaluated twice to completion.
    A cell left queued (its worker died before asking, or lost the queue to others) is
    run by whichever worker asks next; RUNNING trials of dead workers are failed and
    their cells evaluated again.

    Args:
        space: The search space.
        name: ``grid``, or ``test`` for an experiment's measurement of every cell with
            the test protocol.
        batch: Cells proposed at a time (trained together where the driver batches).
        curves: Record each cell's learning curve (its mean validation accuracy after
            every epoch, as the trial's intermediate values): the dashboard plots them
            and ``search.table`` replays low budgets from them. Costs a scoring pass over
            the held-out folds per epoch; changes no score.
    """

    def __init__(self, space: SearchSpace, name: str = "grid", batch: int = 8,
                 curves: bool = False) -> None:
        self.name = name
        self.curves = curves
        self.cells = list(space.cells())
        self.keys = [cell_key(c) for c in self.cells]
        self.batch = batch
        self._chooser = random.Random(worker_id())  # spreads workers over cells
        if name == "test":
            from pairsearch.names import OBJECTIVE_TEST

            self.metric = OBJECTIVE_TEST

    def _missing(self, study: optuna.Study) -> tuple[list[dict], bool, bool]:
        """(cells no trial holds, whether any is queued, whether workers have collided on a
        cell: then each picks among the missing cells at random, to spread out)."""
        trials = study.get_trials(deepcopy=False)
        taken = {claim_of(t) for t in trials if holds_claim(t)}
        missing = [c for c, key in zip(self.cells, self.keys) if key not in taken]
        queued = any(t.state == TrialState.WAITING for t in trials)
        collided = any(Attr.DUPLICATE_OF in t.user_attrs
                       for t in trials if t.state == TrialState.PRUNED)
        return missing, queued, collided

    def propose(self, study: optuna.Study) -> Sequence[Proposal] | Wait | None:
        missing, queued, collided = self._missing(study)
        if not missing and not queued:
            return wait_for_others(study)
        if not missing:  # only cells others queued: ask for one of them
            return [Proposal(None, claim=True, curve=self.curves)]
        if collided:
            cells = self._chooser.sample(missing, min(self.batch, len(missing)))
        else:
            cells = missing[:self.batch]
        return [Proposal(cell, claim=True, curve=self.curves) for cell in cells]

    def adopt(self, trial: optuna.Trial, proposal: Proposal) -> Proposal:
        return Proposal(dict(trial.params), claim=True, curve=self.curves)

    def progress(self, study: optuna.Study) -> tuple[int, int]:
        missing, _, _ = self._missing(study)
        return len(self.cells), len(self.cells) - len(missing)


def run_grid(space: SearchSpace, settings: SearchSettings, storage: optuna.storages.BaseStorage,
             study_name: str, progress: bool = True, stop: StopRequest = NEVER,
             strategy: str = "grid", batching: str = "auto",
             curves: bool = False) -> SearchSummary:
    """Evaluate every cell of ``space`` once (cells already stored are skipped).

    Args:
        space: The search space.
        settings: The protocol.
        storage: Optuna storage.
        study_name: Study to create or continue.
        progress: Show a progress bar with the best accuracy so far.
        stop: Checked between trials; stops the search when requested.
        strategy: ``grid``, or ``test`` for an experiment's measurement of every cell
            with the test protocol.
        batching: See ``driver.drive``.
        curves: Record each cell's learning curve (``GridStrategy``).

    Returns:
        A summary of the run.

    Raises:
        PairsearchError: If the study exists with another space or protocol, or on bad
            settings.
    """
    return drive(GridStrategy(space, strategy, curves=curves), space, settings, storage,
                 study_name, progress, stop, batching)
