"""The study loop every search runs, whatever chooses its cells.

``drive`` owns the loop: check what can be checked before anything is written, open
the study, recover the trials of dead workers, ask the strategy for proposals, ask
the study for trials (claiming cells against other workers where the strategy
wants), have the runner evaluate them, tell the results, show progress, stop when
asked, summarise. A ``Strategy`` only proposes: the grid its missing cells, TPE a
trial for Optuna's sampler, the genetic algorithm a generation bred by DEAP,
successive halving a rung, retest the best configurations of another study.

Proposals come in batches. With batching on, a batch's configurations that share a
network and an optimizer train together as one ensemble (``evaluate_many``); off,
they train one after the other, which on a CPU measures as fast
(docs/benchmarks.md) and lets Ctrl-C stop between any two trials.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from pairsearch.errors import BadValue
from pairsearch.names import BATCHING, OBJECTIVE_CV
from pairsearch.search.queries import best_trial, state_counts
from pairsearch.search.runner import (
    Outcome,
    Proposal,
    Runner,
    SearchSettings,
    cell_key,
    distributions,
    diverged,
)
from pairsearch.search.space import SearchSpace
from pairsearch.search.storage import open_study
from pairsearch.search.workers import NEVER, StopRequest, enqueue_owned, recover_dead_trials

CLAIM = "cell"
"""User attribute of a claimed trial: what it claims (a grid trial's cell key)."""

POLL_SECONDS = 2.0
"""How long a worker waits before asking again when others hold the remaining work."""


class Wait:
    """Returned by ``Strategy.propose`` when other workers hold the work left for now."""


WAIT = Wait()


def wait_for_others(study: optuna.Study) -> Optional[Wait]:
    """``WAIT`` while other workers' trials still run, else ``None``: a strategy with no
    work left ends only when the study is complete (a chained stage reads it next, and a
    dead worker's trial is failed meanwhile and its cell proposed again)."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return WAIT if running else None


@dataclass(frozen=True)
class SearchSummary:
    """What a search command did.

    Attributes:
        study: Study name.
        trials: Finished trials in the study.
        evaluated: Configurations trained by this run.
        reused: Trials answered from stored results by this run.
        failed: Trials of this run that failed (diverged).
        best_value: Best value in the study, if any.
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


def study_totals(study: optuna.Study) -> dict[str, Any]:
    """The study's finished trials and best trial, as ``SearchSummary`` fields."""
    counts = state_counts(study)
    best = best_trial(study)
    return {"trials": counts["complete"] + counts["failed"] + counts["pruned"],
            "best_value": best.value if best else None,
            "best_params": dict(best.params) if best else None}


class Strategy(ABC):
    """What chooses the cells of a search; ``drive`` does the rest.

    Attributes:
        name: Stored with the study (``strategy`` in its metadata).
        metric: The name of the study's value.
    """

    name: str = "search"
    metric: str = OBJECTIVE_CV

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

    def make_runner(self, space: SearchSpace, settings: SearchSettings) -> Runner:
        """The runner that evaluates this strategy's proposals (checked before any write)."""
        return Runner(space, settings)

    def start(self, study: optuna.Study, runner: Runner) -> None:
        """Called once the study is open, before the first proposal."""

    @abstractmethod
    def propose(self, study: optuna.Study) -> Sequence[Proposal] | Wait | None:
        """The next proposals; ``WAIT`` if other workers hold the work left for now;
        ``None`` when the search is done."""

    def adopt(self, trial: optuna.Trial, proposal: Proposal) -> Proposal:
        """The proposal to run for a claimed trial that turned out to hold another
        worker's queued cell (the default: ours, on that cell)."""
        return proposal

    def observe(self, proposal: Proposal, outcome: Outcome) -> None:
        """Called after each trial is told."""

    def collided(self) -> None:
        """Called when a claimed cell turned out to be another worker's."""

    def finish(self, study: optuna.Study) -> None:
        """Called when the loop ends, however it ends."""

    def progress(self, study: optuna.Study) -> tuple[int, int]:
        """(total, done) for the progress bar."""
        counts = state_counts(study)
        done = counts["complete"] + counts["failed"] + counts["pruned"]
        return done, done


def drive(strategy: Strategy, space: SearchSpace, settings: SearchSettings,
          storage: optuna.storages.BaseStorage | Callable[[], optuna.storages.BaseStorage],
          study_name: str, progress: bool = True,
          stop: StopRequest = NEVER, batching: str = "auto") -> SearchSummary:
    """Run (or resume) ``strategy``'s search into study ``study_name``.

    Args:
        strategy: What proposes the cells.
        space: The search space.
        settings: The protocol.
        storage: Optuna storage, or a function opening it (called once every check has
            passed, so that a refused search leaves no new database file behind).
        study_name: Study to create or continue.
        progress: Show a progress bar with the best value so far.
        stop: Checked between trials; stops the search when requested.
        batching: ``off`` (one configuration at a time), ``on`` (a proposal batch's
            configurations of one architecture train together) or ``auto`` (on a GPU
            only: on a CPU batching measured no faster, docs/benchmarks.md).

    Returns:
        A summary of the run.

    Raises:
        PairsearchError: If the study exists with another strategy, space or protocol,
            or on bad settings; nothing is written then.
    """
    if batching not in BATCHING:
        raise BadValue("batching", batching, f"valid: {', '.join(BATCHING)}")
    runner = strategy.make_runner(space, settings)  # every check, before any write
    if callable(storage):  # opened only now: a refused search creates no database file
        storage = storage()
    study = open_study(storage, study_name, strategy.meta(space, settings),
                       sampler=strategy.sampler(settings), pruner=strategy.pruner(settings),
                       metric=strategy.metric)
    runner.bind(study, storage)
    together = batching == "on" or (batching == "auto" and runner.device.type == "cuda")
    bar: Optional[tqdm] = None
    best = _best(study)
    strategy.start(study, runner)
    try:
        while not stop.requested:
            recover_dead_trials(study, storage)
            proposals = strategy.propose(study)
            if bar is None:
                total, done = strategy.progress(study)
                bar = tqdm(total=total, initial=done, desc=f"{strategy.name} {study_name}",
                           unit="trial", disable=not progress, dynamic_ncols=True)
            if proposals is None:
                break
            if isinstance(proposals, Wait):
                time.sleep(POLL_SECONDS)
                continue
            # One at a time, the strategy proposes afresh after every trial: it then sees
            # what other workers did meanwhile, as the loops before this driver did.
            chunks = [list(proposals)] if together else [list(proposals)[:1]]
            for chunk in chunks:
                asked = [pair for pair in (_ask(study, space, p, strategy) for p in chunk)
                         if pair is not None]
                if len(asked) == 1:
                    outcomes = [runner.run(*asked[0])]
                else:
                    outcomes = runner.run_batch(asked) if asked else []
                for (_, proposal), outcome in zip(asked, outcomes):
                    strategy.observe(proposal, outcome)
                    if outcome.value is not None and outcome.state == TrialState.COMPLETE:
                        best = outcome.value if best is None else max(best, outcome.value)
                    bar.set_postfix(best=f"{best:.4f}" if best is not None else "-")
                    bar.update()
                if stop.requested:
                    break
    finally:
        strategy.finish(study)
        if bar is not None:
            bar.close()
    return SearchSummary(study.study_name, evaluated=runner.evaluated, reused=runner.reused,
                         failed=runner.failed, stopped=stop.requested, **study_totals(study))


def _best(study: optuna.Study) -> Optional[float]:
    trial = best_trial(study)
    return None if trial is None else trial.value


def _ask(study: optuna.Study, space: SearchSpace, proposal: Proposal,
         strategy: Strategy) -> Optional[tuple[optuna.Trial, Proposal]]:
    """A trial for ``proposal``, or ``None`` where a claimed cell is another's.

    A claim without a cell asks for whichever claimed cell is queued (another worker's).
    """
    if proposal.cell is None and not proposal.claim:
        return ask(study, space), proposal  # the study's sampler chooses
    if not proposal.claim:
        enqueue_owned(study, proposal.cell)
        return ask(study, space), proposal
    label = None
    if proposal.cell is not None:
        label = proposal.label or cell_key(proposal.cell)
        enqueue_owned(study, proposal.cell, {CLAIM: label, **proposal.attrs})
    # ask pops the oldest queued cell, ours or another worker's. When other workers
    # emptied the queue since this worker last read it, Optuna samples a fresh trial
    # instead and a queued cell stays behind: the strategy proposes until none is left.
    trial = ask(study, space)
    if CLAIM not in trial.user_attrs:
        # Sampled, not queued: its cell was unknown to the others while ask ran, so the
        # duplicate rule cannot vouch for it. Drop it; the strategy proposes again.
        trial.set_user_attr("sampled", True)
        study.tell(trial, state=TrialState.PRUNED)
        return None
    earlier = duplicate_of(study, trial)
    if earlier is not None:
        trial.set_user_attr("duplicate_of", earlier)
        study.tell(trial, state=TrialState.PRUNED)
        strategy.collided()
        return None
    if trial.user_attrs[CLAIM] != label:
        return trial, strategy.adopt(trial, proposal)
    return trial, proposal


def ask(study: optuna.Study, space: SearchSpace) -> optuna.Trial:
    """``study.ask`` for a cell of ``space``, without Optuna's warning that heartbeats are
    meant for ``Study.optimize`` (pairsearch records them itself, ``search.workers``).

    A flat space asks with its fixed distributions; a conditional one (``families``) is
    sampled define-by-run, so the sampler sees only the parameters a family reads.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        if not space.families:
            return study.ask(distributions(space))
        trial = study.ask()
        space.suggest(trial)
        return trial


def claim_of(trial: optuna.trial.FrozenTrial) -> str:
    """What a trial claims: its label, or (trials stored without one) its cell's key.

    A queued (WAITING) trial has no params yet, nor has a queued one just popped by
    ``ask``: Optuna sets them while ``ask`` runs. So claimed trials are labelled with
    their cell when queued.
    """
    return trial.user_attrs.get(CLAIM) or cell_key(trial.params)


def holds_claim(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial holds its claim: done, being run, queued, or a stored failure."""
    return (trial.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
            or diverged(trial) or _low_budget_result(trial))


def _low_budget_result(trial: optuna.trial.FrozenTrial) -> bool:
    """A PRUNED trial that trained to the end of its budget (a halving rung's result)."""
    return trial.state == TrialState.PRUNED and "rung" in trial.user_attrs \
        and "duplicate_of" not in trial.user_attrs and "sampled" not in trial.user_attrs


def duplicate_of(study: optuna.Study, trial: optuna.Trial) -> Optional[int]:
    """The lower-numbered trial holding the same claim, if any.

    Workers may both enqueue a cell; the rule "the lowest-numbered live trial of a
    claim runs it" needs no lock: trial numbers are unique and a trial's state only
    moves WAITING → RUNNING → finished, so every worker reaches the same verdict.
    """
    key = claim_of(trial)
    for other in study.get_trials(deepcopy=False):
        if other.number < trial.number and holds_claim(other) and claim_of(other) == key:
            return other.number
    return None
