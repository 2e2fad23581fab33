"""Optuna's samplers (TPE, random search, NSGA-II) and pruners, proposing to the driver.

Re-running the same command on the same ``--study`` continues it: TPE runs until the
study holds N finished trials. Several workers can share one study (Optuna's ask/tell
is made for that).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import optuna

from pairsearch.errors import BadValue, PairsearchError
from pairsearch.names import PRUNERS, SAMPLERS
from pairsearch.search.driver import SearchSummary, claim_of, drive
from pairsearch.search.space import SearchSpace
from pairsearch.search.store.queries import finished_count
from pairsearch.search.strategies.base import Strategy, Wait, wait_for_others
from pairsearch.search.types import Proposal, SearchSettings, cell_key
from pairsearch.search.workers import NEVER, StopRequest

__all__ = ["TpeStrategy", "make_pruner", "make_sampler", "run_tpe"]


def make_pruner(name: str, epochs: int, min_epochs: int = 1, eta: int = 3
                ) -> optuna.pruners.BasePruner:
    """Optuna's pruner ``name`` on the per-epoch mean validation accuracy of the folds.

    All folds of a trial train together, so each epoch's report is the exact mean over
    the folds: the step is the epoch, as a pruner expects (optuna#4946, #3203).

    Args:
        name: ``median`` (a trial below the median of earlier ones at the same epoch),
            ``hyperband`` (Hyperband's brackets of successive halving), ``halving``
            (asynchronous successive halving) or ``none``.
        epochs: The full budget (Hyperband's largest resource).
        min_epochs: The smallest budget a trial gets before it can be stopped.
        eta: The reduction factor: a rung keeps the best 1/eta.

    Raises:
        PairsearchError: On an unknown pruner or a bad budget.
    """
    if name not in PRUNERS:
        raise BadValue("pruner", name, f"valid: {', '.join(PRUNERS)}")
    if min_epochs < 1 or min_epochs > epochs:
        raise BadValue("min_epochs", min_epochs, f"must be in 1..{epochs} (the epochs)")
    if eta < 2:
        raise BadValue("eta", eta, "must be >= 2")
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min_epochs)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min_epochs, max_resource=epochs,
                                              reduction_factor=eta)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_epochs,
                                                      reduction_factor=eta)
    return optuna.pruners.NopPruner()


def make_sampler(name: str, seed: int, conditional: bool = False
                 ) -> optuna.samplers.BaseSampler:
    """Optuna's sampler ``name``.

    Args:
        name: ``tpe`` (Optuna's TPE), ``random`` (random search, the baseline any
            search must beat) or ``nsga2`` (Optuna's own genetic algorithm).
        seed: The sampler's seed.
        conditional: The space is conditional (families): TPE then models the
            parameters that occur together jointly (``multivariate``, ``group``), as
            Optuna advises for define-by-run spaces.

    Raises:
        PairsearchError: On an unknown sampler.
    """
    if name not in SAMPLERS:
        raise BadValue("sampler", name, f"valid: {', '.join(SAMPLERS)}")
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if not conditional:
        return optuna.samplers.TPESampler(seed=seed)
    with warnings.catch_warnings():  # multivariate and group are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


class TpeStrategy(Strategy):
    """An Optuna sampler (TPE by default) until the study holds ``trials`` finished trials.

    A pruner (``make_pruner``) stops trials on their per-epoch validation accuracy.
    Several workers may share the study (Optuna's ask/tell is made for that); together
    they stop at ``trials``.

    Args:
        trials: Finished trials the study should hold.
        pruner: ``median`` (the default), ``hyperband``, ``halving`` or ``none``.
        min_epochs: Budget before a trial can be pruned.
        eta: Reduction factor of ``hyperband`` and ``halving``.
        sampler: ``tpe`` (the default), ``random`` or ``nsga2`` (``make_sampler``).

    Raises:
        PairsearchError: On a bad number of trials or an unknown sampler.
    """

    name = "tpe"
    one_at_a_time = True

    def __init__(self, trials: int = 50, pruner: str = "median", min_epochs: int = 1,
                 eta: int = 3, sampler: str = "tpe") -> None:
        if trials < 1:
            raise BadValue("trials", trials, "needs at least 1")
        if sampler not in SAMPLERS:
            raise BadValue("sampler", sampler, f"valid: {', '.join(SAMPLERS)}")
        self.trials = trials
        self.pruner_name = pruner
        self.min_epochs = min_epochs
        self.eta = eta
        self.sampler_name = sampler
        self.conditional = False
        self.warm_cells: list[dict] = []
        self.cold: list[dict] = []  # warm cells no trial has tried yet
        self.seed = 0

    def meta(self, space: SearchSpace, settings: SearchSettings) -> dict:
        meta = super().meta(space, settings)
        if self.pruner_name != "median":  # the default keeps older studies continuable
            meta["pruner"] = {"name": self.pruner_name, "min_epochs": self.min_epochs,
                              "eta": self.eta}
        if self.sampler_name != "tpe":  # likewise
            meta["sampler"] = self.sampler_name
        return meta

    def sampler(self, settings: SearchSettings) -> optuna.samplers.BaseSampler:
        return make_sampler(self.sampler_name, settings.search_seed, self.conditional)

    def pruner(self, settings: SearchSettings) -> optuna.pruners.BasePruner:
        return make_pruner(self.pruner_name, settings.epochs or 25, self.min_epochs, self.eta)

    def check(self, space: SearchSpace, settings: SearchSettings) -> None:
        if space.budget is not None:
            raise PairsearchError("TPE samples any combination of values; it cannot keep to "
                                  "a parameter [budget] (use grid)")
        self.pruner(settings)  # a bad pruner setting is refused before any write
        self.seed = settings.search_seed
        self.conditional = bool(space.families)
        if self.conditional:
            # One trial per family at its first values before the sampler chooses: with
            # dozens of families, a few random start-up trials would leave most unseen.
            self.warm_cells = [space.cell_at([i] + [0] * (len(space.params) - 1))
                               for i in range(len(space.families))]
        self.cold = list(self.warm_cells)

    def start(self, study: optuna.Study) -> None:
        stored = len(study.get_trials(deepcopy=False))
        if stored:
            # A resumed study seeded as at its start would replay the sampler's first
            # (random start-up) draws: cells already stored, which the reuse cache answers
            # and counts as finished trials without anything new being learned. The seed
            # still follows --strategy-seed and the study's history, so a rerun repeats.
            study.sampler = make_sampler(self.sampler_name, self.seed + stored,
                                         self.conditional)

    def propose(self, study: optuna.Study) -> Sequence[Proposal] | Wait | None:
        if finished_count(study, running=True) >= self.trials:
            return wait_for_others(study)
        prune = self.pruner_name != "none"
        if self.cold:
            # Any trial of a warm cell, pruned ones included, means it was tried once.
            tried = {claim_of(t) for t in study.get_trials(deepcopy=False)}
            # Trials never disappear: once tried, a cell is not looked for again.
            self.cold = [c for c in self.cold if cell_key(c) not in tried]
            if self.cold:
                # Never pruned: a family whose pair output learns late (digit heads first)
                # would fall below the median at the first epochs and never be seen whole.
                return [Proposal(self.cold[0], claim=True, curve=prune)]
        return [Proposal(None, prune=prune)]

    def progress(self, study: optuna.Study) -> tuple[int, int]:
        done = finished_count(study)
        return max(self.trials, done), done


def run_tpe(space: SearchSpace, settings: SearchSettings, storage: optuna.storages.BaseStorage,
            study_name: str, trials: int, progress: bool = True, stop: StopRequest = NEVER,
            pruner: str = "median", min_epochs: int = 1, eta: int = 3,
            sampler: str = "tpe", batching: str = "auto") -> SearchSummary:
    """An Optuna sampler (TPE by default) until the study holds ``trials`` finished trials.

    Args:
        batching: ``auto`` or ``off``; ``on`` is refused: the sampler proposes one trial
            at a time, from every result so far, so there is never a batch to train
            together.

    Raises:
        PairsearchError: If the study exists with another space, protocol or sampler, or
            on bad settings (``batching="on"`` among them).
    """
    return drive(TpeStrategy(trials, pruner, min_epochs, eta, sampler), space, settings,
                 storage, study_name, progress, stop, batching)
