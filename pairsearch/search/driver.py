"""The study loop every search runs, and the whole life of a trial, in one place.

``drive`` owns the loop, as Optuna's own ``_run_trial`` does: check what can be checked
before anything is written, open the study, recover the trials of dead workers, ask the
strategy for proposals, ask the study for trials (claiming cells against other workers
where the strategy wants), have the trial evaluator evaluate them (heartbeats while they
train), handle interruptions, and tell the study, then show progress, stop when asked,
summarise. This module is the only one that tells a study (``_tell``). A ``Strategy``
(``search.strategies``) only proposes and observes: the grid its missing cells, TPE a
trial for Optuna's sampler, the genetic algorithm a generation bred by DEAP, successive
halving a rung, retest the best configurations of another study.

Proposals come in batches. With batching on, a batch's configurations that share a
network and an optimizer train together as one ensemble (``evaluate_many``); off,
they train one after the other, which on a CPU measures as fast
(docs/benchmarks.md) and lets Ctrl-C stop between any two trials.
"""

from __future__ import annotations

import datetime
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from pairsearch.errors import BadValue, PairsearchError
from pairsearch.names import BATCHING, Attr
from pairsearch.search.space import SearchSpace
from pairsearch.search.store.queries import (
    best_trial,
    best_value,
    holds_claim,
    state_counts,
)
from pairsearch.search.store.storage import maybe_storage, open_study, set_trial_user_attrs
from pairsearch.search.store.storage import trial_id as stored_trial_id
from pairsearch.search.trial_evaluator import TrialEvaluator
from pairsearch.search.types import (
    Outcome,
    Proposal,
    SearchSettings,
    Wait,
    cell_key,
    distributions,
)
from pairsearch.search.workers import (
    NEVER,
    StopRequest,
    dead_trials,
    enqueue_owned,
    fail_stale_trials,
    worker_id,
)

if TYPE_CHECKING:
    from pairsearch.search.strategies.base import Strategy

CLAIM = Attr.CLAIM
"""User attribute of a claimed trial: what it claims (a grid trial's cell key)."""

POLL_SECONDS = 2.0
"""How long a worker waits before asking again when others hold the remaining work."""


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


def drive(strategy: "Strategy", space: SearchSpace, settings: SearchSettings,
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
            or on bad settings (``batching="on"`` for a strategy that proposes one trial
            at a time among them); nothing is written then.
    """
    if batching not in BATCHING:
        raise BadValue("batching", batching, f"valid: {', '.join(BATCHING)}")
    if batching == "on" and strategy.one_at_a_time:
        raise BadValue("batching", batching, f"{strategy.name} proposes one trial at a time, "
                       "from every result so far: there is no batch to train together (use "
                       "auto or off)")
    strategy.check(space, settings)  # every check, before any write
    evaluator = TrialEvaluator(space, settings)
    if callable(storage):  # opened only now: a refused search creates no database file
        storage = storage()
    study = open_study(storage, study_name, strategy.meta(space, settings),
                       sampler=strategy.sampler(settings), pruner=strategy.pruner(settings),
                       metric=strategy.metric)
    evaluator.bind(study, storage)
    together = batching == "on" or (batching == "auto" and evaluator.device.type == "cuda")
    bar: Optional[tqdm] = None
    best = best_value(study)
    counts = {"evaluated": 0, "reused": 0, "failed": 0}
    strategy.start(study)
    complete = False
    try:
        while not stop.requested:
            recover_dead_trials(study, storage)
            proposals = strategy.propose(study)
            if bar is None:
                total, done = strategy.progress(study)
                bar = tqdm(total=total, initial=done, desc=f"{strategy.name} {study_name}",
                           unit="trial", disable=not progress, dynamic_ncols=True)
            if proposals is None:
                complete = True
                break
            if isinstance(proposals, Wait):
                time.sleep(POLL_SECONDS)
                continue
            # Without batching, a batch's proposals run one at a time and the strategy
            # proposes again after the batch, not after every trial: reading a large study
            # per trial made a 6,400-cell grid quadratic. What other workers did meanwhile
            # is seen at the next batch; a cell two workers both claimed in the meantime
            # is run once (``duplicate_of``).
            chunks = [list(proposals)] if together else [[p] for p in proposals]
            for chunk in chunks:
                for proposal, outcome in _run_trials(study, space, chunk, strategy, evaluator):
                    if outcome.trained:
                        counts["evaluated"] += 1
                        counts["failed"] += outcome.state == TrialState.FAIL
                    else:
                        counts["reused"] += 1
                    if outcome.value is not None and outcome.state == TrialState.COMPLETE:
                        best = outcome.value if best is None else max(best, outcome.value)
                    bar.set_postfix(best=f"{best:.4f}" if best is not None else "-")
                    bar.update()
                if stop.requested:
                    break
    finally:
        strategy.finish(study)
        evaluator.finish(complete)
        if bar is not None:
            bar.close()
    return SearchSummary(study.study_name, stopped=stop.requested, **counts,
                         **study_totals(study))


def _run_trials(study: optuna.Study, space: SearchSpace, proposals: Sequence[Proposal],
                strategy: "Strategy", evaluator: TrialEvaluator
                ) -> list[tuple[Proposal, Outcome]]:
    """One batch of trials, from ask to tell: ask (claims, duplicates), label, evaluate
    (the evaluator records heartbeats), fail them all on an interruption, or let the
    strategy observe each outcome and tell it with its attributes in one write."""
    started = [entry for entry in (_ask(study, space, p, strategy) for p in proposals)
               if entry is not None]
    if not started:
        return []
    asked = [(trial, proposal) for trial, proposal, _ in started]
    for trial, proposal, labelled in started:
        if not labelled:  # a trial started whole holds its labels already
            evaluator.label(trial, proposal)
    try:
        verdicts = evaluator.evaluate(asked)
    except (KeyboardInterrupt, PairsearchError):
        # Not a result: no fail_reason, so the cells are evaluated again on resume.
        for trial, _ in asked:
            _tell(study, trial, TrialState.FAIL, attrs={Attr.INTERRUPTED: True})
        raise
    done = []
    for (trial, proposal), verdict in zip(asked, verdicts):
        outcome = Outcome(trial.number, verdict.state, verdict.value, verdict.trained)
        attrs = {**verdict.attrs, **(strategy.observe(proposal, outcome) or {})}
        if verdict.report is not None:
            trial.report(verdict.report, 0)  # a pruned trial's value is its last report
        _tell(study, trial, verdict.state, verdict.value, attrs)
        done.append((proposal, outcome))
    return done


def _tell(study: optuna.Study, trial: optuna.Trial | int, state: TrialState,
          value: Optional[float] = None, attrs: Optional[Mapping[str, Any]] = None,
          skip_if_finished: bool = False) -> None:
    """Store ``attrs`` in one write, then tell ``trial`` ``state`` (with ``value`` if
    COMPLETE): the one place a study is told."""
    if attrs:
        storage = maybe_storage(study, None)
        # An asked trial knows its storage id; a bare number is looked up.
        identifier = trial._trial_id if isinstance(trial, optuna.Trial) else \
            stored_trial_id(storage, study, trial)
        set_trial_user_attrs(storage, identifier, attrs)
    study.tell(trial, value if state == TrialState.COMPLETE else None, state=state,
               skip_if_finished=skip_if_finished)


def recover_dead_trials(study: optuna.Study,
                        storage: Optional[optuna.storages.BaseStorage] = None) -> int:
    """Fail the RUNNING trials whose worker is gone; returns how many were failed.

    Such trials keep no ``fail_reason`` (they did not fail on their own), so the
    strategies evaluate their cells again. The dead processes of this host are found at
    once (``workers.dead_trials``); stale trials of any host (no heartbeat for the grace
    period) at most once per heartbeat interval (``workers.fail_stale_trials``).

    Args:
        study: The study.
        storage: Its storage (default: the study's own, ``storage.study_storage``).
    """
    storage = maybe_storage(study, storage)
    failed = 0
    for number, reason in dead_trials(study):
        try:
            _tell(study, number, TrialState.FAIL, attrs={Attr.CRASHED: reason},
                  skip_if_finished=True)
            failed += 1
        except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            pass  # another worker got there first
    return failed + fail_stale_trials(study, storage)


def _ask(study: optuna.Study, space: SearchSpace, proposal: Proposal,
         strategy: "Strategy") -> Optional[tuple[optuna.Trial, Proposal, bool]]:
    """A trial for ``proposal`` and whether it holds its labels already (the worker and
    the proposal's attributes), or ``None`` where a claimed cell is another's.

    A claim without a cell asks for whichever claimed cell is queued (another worker's).
    """
    if proposal.cell is None and not proposal.claim:
        return ask(study, space), proposal, False  # the study's sampler chooses
    if proposal.cell is not None and not space.families:
        # A known cell of a flat space: the RUNNING trial is created whole, in one write.
        labels = {CLAIM: proposal.label or cell_key(proposal.cell)} if proposal.claim else {}
        labels.update(proposal.attrs)
        trial = start_trial(study, space, proposal.cell, labels)
        if not proposal.claim:
            return trial, proposal, True
        earlier = duplicate_of(study, trial)
        if earlier is not None:
            _tell(study, trial, TrialState.PRUNED, attrs={Attr.DUPLICATE_OF: earlier})
            return None
        return trial, proposal, True
    if not proposal.claim:
        enqueue_owned(study, proposal.cell)
        return ask(study, space), proposal, False
    label = None
    if proposal.cell is not None:
        label = proposal.label or cell_key(proposal.cell)
        enqueue_owned(study, proposal.cell, {CLAIM: label, **proposal.attrs})
    # ask pops the oldest queued cell, ours or another worker's (queued by this path, or
    # left queued by a pairsearch that did not start trials whole yet). When other workers emptied the
    # queue since this worker last read it, Optuna samples a fresh trial instead and a
    # queued cell stays behind: the strategy proposes until none is left.
    trial = ask(study, space)
    if CLAIM not in trial.user_attrs:
        # Sampled, not queued: its cell was unknown to the others while ask ran, so the
        # duplicate rule cannot vouch for it. Drop it; the strategy proposes again.
        _tell(study, trial, TrialState.PRUNED, attrs={Attr.SAMPLED: True})
        return None
    earlier = duplicate_of(study, trial)
    if earlier is not None:
        _tell(study, trial, TrialState.PRUNED, attrs={Attr.DUPLICATE_OF: earlier})
        return None
    if trial.user_attrs[CLAIM] != label:
        return trial, strategy.adopt(trial, proposal), False
    return trial, proposal, False


def start_trial(study: optuna.Study, space: SearchSpace, cell: Mapping[str, Any],
                labels: Mapping[str, Any]) -> optuna.Trial:
    """A RUNNING trial of ``study`` holding ``cell`` (a flat space's), labelled with this
    worker and ``labels``, created in one write.

    What ``enqueue_trial`` + ``ask`` store, without their writes one by one: the queue
    entry, its pop and one ``set_trial_param`` per dimension are each a transaction
    (on SQLite, a commit and its fsync). Optuna's ``BaseStorage.create_new_trial`` takes
    a template trial and writes it whole, as ``Study.add_trial`` does for finished
    trials; ``optuna.Trial`` then wraps it as ``ask`` wraps a popped one (the sampler's
    ``before_trial`` runs, and the params are already there, so nothing is sampled).
    """
    params = dict(cell)
    template = optuna.trial.FrozenTrial(
        number=-1, state=TrialState.RUNNING, value=None,
        datetime_start=datetime.datetime.now(), datetime_complete=None, params=params,
        distributions={name: distribution for name, distribution in distributions(space).items()
                       if name in params},
        user_attrs={**labels, Attr.WORKER: worker_id()}, system_attrs={},
        intermediate_values={}, trial_id=-1)
    storage = maybe_storage(study, None)
    # The id Optuna's Study holds (what its own ask passes); looked up where it has none.
    study_id = getattr(study, "_study_id", None)
    if study_id is None:
        study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.create_new_trial(study_id, template_trial=template)
    return optuna.Trial(study, trial_id)


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
