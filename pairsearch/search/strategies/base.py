"""What a strategy is: it proposes cells and observes their outcomes; the driver does the rest.

``driver.drive`` runs the loop (recover, ask, evaluate, tell); a strategy answers its
questions: what the study must have been made with (``meta``), which Optuna sampler and
pruner it needs, what to evaluate next (``propose``), and what it makes of each outcome
(``observe``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping, Optional, Sequence

import optuna
from optuna.trial import TrialState

from pairsearch.names import OBJECTIVE_CV
from pairsearch.search.space import SearchSpace
from pairsearch.search.store.queries import finished_count
from pairsearch.search.types import WAIT, Outcome, Proposal, SearchSettings, Wait

__all__ = ["WAIT", "Strategy", "Wait", "wait_for_others"]


def wait_for_others(study: optuna.Study) -> Optional[Wait]:
    """``WAIT`` while other workers' trials still run, else ``None``: a strategy with no
    work left ends only when the study is complete (a chained stage reads it next, and a
    dead worker's trial is failed meanwhile and its cell proposed again)."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return WAIT if running else None


class Strategy(ABC):
    """What chooses the cells of a search; ``driver.drive`` does the rest.

    Attributes:
        name: Stored with the study (``strategy`` in its metadata).
        metric: The name of the study's value.
        one_at_a_time: It proposes one trial at a time, from every result so far (TPE):
            there is never a batch to train together, so ``batching="on"`` is refused.
    """

    name: str = "search"
    metric: str = OBJECTIVE_CV
    one_at_a_time: bool = False

    def meta(self, space: SearchSpace, settings: SearchSettings) -> dict[str, Any]:
        """What a study must have been made with to be continued by this strategy."""
        return {"strategy": self.name, "space": space.to_json(),
                "protocol": settings.protocol_meta()}

    def sampler(self, settings: SearchSettings) -> Optional[optuna.samplers.BaseSampler]:
        """The study's sampler (only strategies that let it choose need one)."""
        return None

    def pruner(self, settings: SearchSettings) -> Optional[optuna.pruners.BasePruner]:
        """The study's pruner."""
        return None

    def check(self, space: SearchSpace, settings: SearchSettings) -> None:
        """Refuse bad settings before anything is written (raise ``PairsearchError``)."""

    def start(self, study: optuna.Study) -> None:
        """Called once the study is open, before the first proposal."""

    @abstractmethod
    def propose(self, study: optuna.Study) -> Sequence[Proposal] | Wait | None:
        """The next proposals; ``WAIT`` if other workers hold the work left for now;
        ``None`` when the search is done."""

    def adopt(self, trial: optuna.Trial, proposal: Proposal) -> Proposal:
        """The proposal to run for a claimed trial that turned out to hold another
        worker's queued cell (the default: ours, on that cell)."""
        return proposal

    def observe(self, proposal: Proposal, outcome: Outcome) -> Optional[Mapping[str, Any]]:
        """Called with each outcome before the trial is told; returns more attributes to
        store with it (the GA's fitness), or ``None``."""
        return None

    def finish(self, study: optuna.Study) -> None:
        """Called when the loop ends, however it ends."""

    def progress(self, study: optuna.Study) -> tuple[int, int]:
        """(total, done) for the progress bar."""
        done = finished_count(study)
        return done, done
