"""Successive halving of the grid, as scikit-learn's ``HalvingGridSearchCV`` does it.

Rung 0 trains every distinct configuration of the space for ``min_epochs``; each
next rung keeps the best 1/eta of the last (by mean K-fold accuracy at that budget)
and trains them for eta times the epochs, until a rung trains at the full budget.
A survivor continues from the checkpoint its last rung kept (``store.checkpoints``:
weights, optimizer and random generator state per run) instead of training from
epoch 0; the learning rate is constant, so its result at a budget equals a training
from scratch with the same seeds (and one retrains where its checkpoint is missing or
damaged). A configuration's full-budget result is therefore exactly the one the
exhaustive grid stores for it, and the best cell reported is one trained at the full
budget.

Trials record their ``rung`` and ``budget`` (epochs); those below the full budget are
told PRUNED with their per-epoch mean validation accuracy as intermediate values,
so the study's best is a full-budget trial and the dashboard shows every learning
curve. Cells that differ only in options their model ignores are one configuration:
only the first is trained. Several workers may share a study (cells are claimed per
rung, as the grid does); a worker that finds the rest of a rung held by others waits
for it. A halving study resumes after a kill like every other.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import optuna

from pairsearch.errors import BadValue, PairsearchError
from pairsearch.names import Attr
from pairsearch.search.driver import SearchSummary, claim_of, drive
from pairsearch.search.space import SearchSpace
from pairsearch.search.store.queries import holds_claim, is_result, result_value
from pairsearch.search.strategies.base import WAIT, Strategy, Wait
from pairsearch.search.types import Proposal, SearchSettings, cell_key
from pairsearch.search.workers import NEVER, StopRequest


def rung_budgets(epochs: int, min_epochs: int, eta: int) -> list[int]:
    """The epochs of each rung: ``min_epochs``, × eta, …, capped at ``epochs`` (the last).

    Raises:
        PairsearchError: If ``min_epochs`` is not in 1..epochs or ``eta`` < 2.
    """
    if not 1 <= min_epochs <= epochs:
        raise BadValue("min_epochs", min_epochs, f"must be in 1..{epochs} (the epochs)")
    if eta < 2:
        raise BadValue("eta", eta, "must be >= 2")
    budgets = [min_epochs]
    while budgets[-1] < epochs:
        budgets.append(min(budgets[-1] * eta, epochs))
    return budgets


class HalvingStrategy(Strategy):
    """Proposes the cells of the lowest rung that is not complete.

    Args:
        space: The search space.
        min_epochs: Epochs of rung 0.
        eta: Reduction factor: each rung keeps the best 1/eta of the last.
        batch: Cells proposed at a time.
    """

    name = "halving"

    def __init__(self, space: SearchSpace, min_epochs: int = 1, eta: int = 3,
                 batch: int = 8) -> None:
        self.space = space
        self.min_epochs = min_epochs
        self.eta = eta
        self.batch = batch
        self.budgets: list[int] = []
        self.cells: list[dict] = []
        self._keys: dict[int, str] = {}  # id of a cell of self.cells -> its cell_key
        self._stored: dict[int, tuple[int, str, Optional[float]]] = {}  # finished results

    def meta(self, space: SearchSpace, settings: SearchSettings) -> dict:
        meta = super().meta(space, settings)
        meta["protocol"] = {**meta["protocol"], "halving": {"min_epochs": self.min_epochs,
                                                            "eta": self.eta}}
        return meta

    def check(self, space: SearchSpace, settings: SearchSettings) -> None:
        if "epochs" in space.params:
            raise PairsearchError("successive halving sets the epochs of each rung; the space "
                                  "must not have an 'epochs' dimension")
        first = space.config(next(space.cells()))
        self.budgets = rung_budgets(settings.epochs or first.train.epochs, self.min_epochs,
                                    self.eta)
        # One cell per distinct configuration (the first in grid order).
        seen: set[str] = set()
        self.cells = []
        for cell in space.cells():
            key = space.config(cell).key()
            if key not in seen:
                seen.add(key)
                self.cells.append(cell)
        self._keys = {id(cell): cell_key(cell) for cell in self.cells}

    def rung_sizes(self) -> list[int]:
        """Configurations trained at each rung, for a complete run."""
        sizes = [len(self.cells)]
        for _ in self.budgets[1:]:
            sizes.append(math.ceil(sizes[-1] / self.eta))
        return sizes

    @staticmethod
    def label(rung: int, cell: dict, key: Optional[str] = None) -> str:
        """What a rung's trial claims (``key``: the cell's ``cell_key``, if known)."""
        return f"rung {rung} {key or cell_key(cell)}"

    def _results(self, trials: list, rung: int) -> dict[str, Optional[float]]:
        """Cell key → mean CV accuracy at the rung's budget (``None``: diverged)."""
        for t in trials:  # a finished result never changes: read each once
            if t.number not in self._stored and t.state.is_finished() and \
                    t.user_attrs.get(Attr.RUNG) is not None and holds_claim(t) and is_result(t):
                self._stored[t.number] = (t.user_attrs[Attr.RUNG], cell_key(t.params),
                                          result_value(t))
        return {key: value for at, key, value in self._stored.values() if at == rung}

    def _rungs(self, study: optuna.Study):
        """For each rung reached: its cells, the claims held, and its results."""
        trials = study.get_trials(deepcopy=False)
        held = {claim_of(t) for t in trials if holds_claim(t)}
        cells = self.cells
        key = self._keys
        for rung in range(len(self.budgets)):
            stored = self._results(trials, rung)
            results = {key[id(c)]: stored[key[id(c)]] for c in cells if key[id(c)] in stored}
            yield rung, cells, held, results
            if len(results) < len(cells):
                return
            keep = math.ceil(len(cells) / self.eta)
            order = {key[id(c)]: i for i, c in enumerate(cells)}
            ranked = sorted((c for c in cells if results[key[id(c)]] is not None),
                            key=lambda c: (-results[key[id(c)]], order[key[id(c)]]))
            cells = ranked[:keep]

    def propose(self, study: optuna.Study) -> Sequence[Proposal] | Wait | None:
        for rung, cells, held, results in self._rungs(study):
            missing = [c for c in cells if self.label(rung, c, self._keys[id(c)]) not in held]
            if missing:
                return [self._proposal(rung, c) for c in missing[:self.batch]]
            if len(results) < len(cells):
                return WAIT  # other workers are finishing this rung
        return None

    def _proposal(self, rung: int, cell: dict) -> Proposal:
        # A rung below the last keeps its trainings' state; the next continues from it.
        budget = self.budgets[rung]
        return Proposal(cell, {Attr.RUNG: rung, Attr.BUDGET: budget}, claim=True,
                        label=self.label(rung, cell), epochs=budget, curve=True,
                        keep_state=rung + 1 < len(self.budgets), resume=rung > 0)

    def adopt(self, trial: optuna.Trial, proposal: Proposal) -> Proposal:
        return self._proposal(trial.user_attrs[Attr.RUNG], dict(trial.params))

    def progress(self, study: optuna.Study) -> tuple[int, int]:
        done = 0
        for rung, cells, held, results in self._rungs(study):
            done += len(results)
        return sum(self.rung_sizes()), done


def run_halving(space: SearchSpace, settings: SearchSettings,
                storage: optuna.storages.BaseStorage, study_name: str, min_epochs: int = 1,
                eta: int = 3, progress: bool = True, stop: StopRequest = NEVER,
                batching: str = "auto") -> SearchSummary:
    """Successive halving over every cell of ``space`` up to the protocol's epochs.

    Raises:
        PairsearchError: If the study exists with another space or protocol, on bad
            settings, or if the space varies the epochs.
    """
    return drive(HalvingStrategy(space, min_epochs, eta), space, settings, storage, study_name,
                 progress, stop, batching)
