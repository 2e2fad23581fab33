"""The one objective every strategy uses: evaluate cells, store them as Optuna trials.

A trial's value is the mean K-fold CV accuracy on the training pairs (the test
pairs are never seen by a search); its user attributes hold the per-fold
accuracies, std, F1, digit accuracy, parameter count, training seconds,
device, data source and protocol. A diverging configuration is a FAIL trial
with its reason. A configuration already stored in the study (equivalent cells
included: options a model ignores) is not retrained: its scores are copied and
the trial is marked ``reused_from``. A trial's attributes are written at most twice
(its labels when it starts, if ``ask`` did not store them already, and its results
just before it is told), each time in one write (``storage.set_trial_user_attrs``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from pairsearch.data import INPUTS, generate_draws, load_pools
from pairsearch.errors import BadValue, PairsearchError
from pairsearch.evaluation import (
    Config,
    Evaluation,
    Protocol,
    evaluate,
    evaluate_many,
    resolve_device,
    resolve_precision,
    stratified_folds,
)
from pairsearch.names import DEFAULT_SOURCE
from pairsearch.search.space import Cell, SearchSpace
from pairsearch.search.storage import set_trial_user_attrs
from pairsearch.search.workers import Heartbeat, worker_id

REFRESH_SECONDS = 5.0
"""How often a runner looks for results other workers stored, at most."""

# Attributes copied from an earlier trial when its result is reused.
_SCORE_ATTRS = ("config_key", "accuracies", "accuracy_std", "f1_mean", "digit_accuracy_mean",
                "final_loss_mean", "params", "train_seconds", "device", "precision",
                "cpu_threads", "data",
                "protocol", "draw_means", "train_accuracies", "fail_reason")


@dataclass(frozen=True)
class SearchSettings:
    """The protocol of a study: what every trial of a study shares.

    Searches (grid, TPE, GA) use ``kind="cv"``: K-fold on the training pairs, the test
    pairs never seen. Experiments also measure fixed configurations with the reports'
    ``kind="test"`` protocol.

    Attributes:
        folds: K of the stratified K-fold on the training pairs.
        epochs: Training epochs (``None``: the space's or the default 25).
        seed: Seed of the pair draw, folds, initialisations and the strategy.
        data: Digit source spec.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto``, ``fp32`` or ``bf16`` (``evaluation.precision``); like the
            device, not part of the protocol: each trial records the one it trained in.
        train_pairs: Training pairs drawn.
        test_pairs: Test pairs drawn (used only by the test protocol).
        strategy_seed: Seed of the strategy's own choices (TPE sampler, GA); ``None``:
            ``seed``. Not part of the protocol: strategies with different strategy seeds
            score cells identically.
        kind: ``cv`` or ``test``.
        repeats: R: CV repeats, or trainings of the test protocol, per draw.
        draws: D: independent draws of the pairs (``data.generate_draws``).
        inputs: ``standardised`` or ``raw`` pixel values (``data.pairs``).

    Raises:
        PairsearchError: If a value is out of range (the message names it).
    """

    folds: int = 3
    epochs: Optional[int] = None
    seed: int = 0
    data: str = DEFAULT_SOURCE
    device: str = "auto"
    precision: str = "auto"
    train_pairs: int = 1000
    test_pairs: int = 1000
    strategy_seed: Optional[int] = None
    kind: str = "cv"
    repeats: int = 1
    draws: int = 1
    inputs: str = "standardised"

    @property
    def search_seed(self) -> int:
        """The seed of the strategy's own random choices."""
        return self.seed if self.strategy_seed is None else self.strategy_seed

    @property
    def protocol(self) -> Protocol:
        """The evaluator's protocol."""
        return Protocol(self.kind, self.folds, self.repeats, self.draws)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        self.protocol  # checks kind, K >= 2, repeats and draws
        if self.epochs is not None and self.epochs < 1:
            raise BadValue("epochs", self.epochs, "must be >= 1")
        if self.inputs not in INPUTS:
            raise BadValue("inputs", self.inputs, f"valid: {', '.join(INPUTS)}")

    def protocol_meta(self) -> dict[str, Any]:
        """What a study's trials must share to be comparable (device and precision are not).

        Settings at their defaults that older versions did not have (draws, inputs) are
        left out, so studies made before them continue.
        """
        meta = asdict(self)
        for key in ("device", "precision", "strategy_seed", "kind", "repeats", "draws",
                    "inputs"):
            meta.pop(key)
        if self.kind == "test":
            meta.pop("folds")
        if self.draws != 1:
            meta["draws"] = self.draws
        if self.inputs != "standardised":
            meta["inputs"] = self.inputs
        return {"kind": self.kind, "repeats": self.repeats, **meta}


def cell_key(cell: Mapping[str, Any]) -> str:
    """Canonical string of a cell (its stored params)."""
    return json.dumps(dict(cell), sort_keys=True)


def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """One categorical distribution per dimension, the values in file order."""
    return {name: optuna.distributions.CategoricalDistribution(list(values))
            for name, values in space.params.items()}


def diverged(trial: optuna.trial.FrozenTrial) -> bool:
    """A FAIL trial whose configuration diverged (a result, not an accident to redo)."""
    return trial.state == TrialState.FAIL and "fail_reason" in trial.user_attrs


@dataclass(frozen=True)
class Proposal:
    """A cell a strategy wants evaluated, and how.

    Attributes:
        cell: The cell; ``None`` lets the study's sampler choose (TPE).
        attrs: User attributes stored with the trial (the GA's generation, a rung).
        claim: Claim the cell against other workers (the grid's rule: the lowest-numbered
            live trial of a claim runs it; a duplicate is dropped as PRUNED).
        label: What is claimed (default: the cell's key).
        epochs: Training budget, when not the protocol's.
        prune: Report the per-epoch mean validation accuracy to the study's pruner.
        curve: Report the per-epoch values without pruning (a learning curve).
        complete: Tell COMPLETE when done; ``False`` tells PRUNED (a result at a low
            budget, kept apart from the study's best).
        before_tell: Given the outcome, returns more attributes to store before the
            trial is told (the GA's fitness).
    """

    cell: Optional[Cell]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    claim: bool = False
    label: Optional[str] = None
    epochs: Optional[int] = None
    prune: bool = False
    curve: bool = False
    complete: bool = True
    before_tell: Optional[Callable[["Outcome"], Mapping[str, Any]]] = None


@dataclass(frozen=True)
class Outcome:
    """What became of one trial.

    Attributes:
        number: The trial's number.
        state: COMPLETE, PRUNED (stopped by the pruner, or a low-budget result) or FAIL.
        value: The mean CV accuracy reached (for a pruned trial, at its last epoch);
            ``None`` for a failure.
        trained: Whether this trial trained (``False``: a stored result was reused).
    """

    number: int
    state: TrialState
    value: Optional[float]
    trained: bool = True


@dataclass(frozen=True)
class _Stored:
    """A configuration's first result in the study."""

    number: int
    value: Optional[float]
    attrs: Mapping[str, Any]


class Runner:
    """Evaluates cells of one space under one protocol into one study.

    Everything that can be checked without training is checked here, before any study
    is opened: the data source, the pair counts, the folds, the device and precision.

    Args:
        space: The search space.
        settings: The protocol.

    Raises:
        PairsearchError: On a bad data source, pair count, fold count, device, precision
            or protocol.
    """

    def __init__(self, space: SearchSpace, settings: SearchSettings) -> None:
        if settings.epochs is not None and "epochs" in space.params:
            raise BadValue("epochs", settings.epochs,
                           "conflicts with the space's 'epochs' dimension")
        self.space = space
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.precision = resolve_precision(settings.precision, self.device)
        pools = load_pools(settings.data)
        self.draws = generate_draws(pools, settings.train_pairs, settings.test_pairs,
                                    settings.seed, settings.draws, settings.inputs)
        self.data = self.draws[0]
        self.protocol = settings.protocol
        if self.protocol.kind == "cv":
            for draw in self.draws:  # K-fold needs K pairs of the rarer target class
                stratified_folds(draw.train.targets, self.protocol.folds, 0)
        self.study: Optional[optuna.Study] = None
        self.storage: Optional[optuna.storages.BaseStorage] = None
        self._study_id: Optional[int] = None
        self.evaluated = 0
        self.reused = 0
        self.failed = 0
        self._cache: dict[str, _Stored] = {}
        self._seen: set[int] = set()
        self._refreshed = float("-inf")

    def bind(self, study: optuna.Study, storage: optuna.storages.BaseStorage) -> "Runner":
        """Write to ``study`` from now on, reusing the results it already holds."""
        self.study, self.storage = study, storage
        self._study_id = storage.get_study_id_from_name(study.study_name)
        self._cache = {}
        self._seen: set[int] = set()
        self._refresh_cache()
        return self

    def _refresh_cache(self, force: bool = True) -> None:
        """Learn the results stored since (by other workers too).

        A result is a trial that trained to the end of its budget: COMPLETE, a
        low-budget result told PRUNED (it has its accuracies), or a divergence. Unless
        ``force``, at most once every ``REFRESH_SECONDS``: reading every trial of a
        6,400-cell study takes a quarter of a second, and a result another worker stored
        a moment ago is only a chance to save a training, not a correctness matter.
        """
        now = time.monotonic()
        if not force and now - self._refreshed < REFRESH_SECONDS:
            return
        self._refreshed = now
        for trial in self.study.get_trials(deepcopy=False):
            if trial.number in self._seen:
                continue
            if trial.state.is_finished():
                self._seen.add(trial.number)
            attrs = trial.user_attrs
            key = attrs.get("config_key")
            if key is None or "reused_from" in attrs or key in self._cache:
                continue
            if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and attrs.get("accuracies"):
                value = trial.value if trial.state == TrialState.COMPLETE else \
                    float(np.mean(attrs["accuracies"]))
                self._cache[key] = _Stored(trial.number, value, attrs)
            elif diverged(trial):
                self._cache[key] = _Stored(trial.number, None, attrs)

    def config(self, cell: Mapping[str, Any], epochs: Optional[int] = None) -> Config:
        """The configuration a cell trains under this protocol (``epochs``: a budget)."""
        config = self.space.config(cell)
        epochs = epochs if epochs is not None else self.settings.epochs
        if epochs is not None:
            config = replace(config, train=replace(config.train, epochs=epochs))
        return config

    def run(self, trial: optuna.Trial, proposal: Proposal) -> Outcome:
        """Evaluate ``proposal``'s cell (or reuse its stored result) and tell ``trial``."""
        return self.run_batch([(trial, proposal)])[0]

    def run_batch(self, asked: Sequence[tuple[optuna.Trial, Proposal]]) -> list[Outcome]:
        """Evaluate several asked trials; those of one architecture train together.

        Each trial's cell is its own params (a claimed trial may hold another worker's
        queued cell). Stored results are reused; a configuration twice in the batch is
        trained once.
        """
        outcomes: list[Optional[Outcome]] = [None] * len(asked)
        pending: dict[str, list[int]] = {}
        configs: dict[str, Config] = {}
        for index, (trial, proposal) in enumerate(asked):
            self._label(trial, proposal)
            config = self.config(dict(trial.params), proposal.epochs)
            key = config.key()
            if key not in self._cache and key not in pending:
                self._refresh_cache(force=False)
            if key in self._cache:
                outcomes[index] = self._reuse(trial, proposal, self._cache[key])
                continue
            pending.setdefault(key, []).append(index)
            configs[key] = config
        if pending:
            evaluations = self._evaluate(asked, pending, configs)
            for key, indices in pending.items():
                first, *others = indices
                trial, proposal = asked[first]
                outcomes[first] = self._record(trial, proposal, key, evaluations[key])
                for index in others:
                    hit = self._cache.get(key)
                    if hit is None:  # pruned before the end: nothing to share
                        outcomes[index] = self._record(*asked[index], key, evaluations[key])
                    else:
                        outcomes[index] = self._reuse(*asked[index], hit)
        return [o for o in outcomes if o is not None]

    def _evaluate(self, asked: Sequence[tuple[optuna.Trial, Proposal]],
                  pending: dict[str, list[int]], configs: dict[str, Config]
                  ) -> dict[str, Evaluation]:
        keys = list(pending)
        leaders = [asked[pending[key][0]] for key in keys]
        callbacks = [self._callback(trial, proposal) for trial, proposal in leaders]
        data = self.draws if len(self.draws) > 1 else self.data
        numbers = [asked[i][0].number for key in keys for i in pending[key]]
        try:
            with Heartbeat(self.study, numbers, self.storage):
                if len(keys) == 1:
                    evaluations = [evaluate(configs[keys[0]], data, self.protocol,
                                            self.settings.seed, self.device, callbacks[0],
                                            precision=self.precision)]
                else:
                    evaluations = evaluate_many([configs[k] for k in keys], data, self.protocol,
                                                self.settings.seed, self.device, callbacks,
                                                precision=self.precision)
        except (KeyboardInterrupt, PairsearchError):
            # Not a result: no fail_reason, so the cells are evaluated again on resume.
            for key in keys:
                for index in pending[key]:
                    trial = asked[index][0]
                    self._write(trial, {"interrupted": True})
                    self.study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as error:  # CUDA out of memory and other errors inside a trial
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            reason = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
            evaluations = [Evaluation(configs[k], self.protocol, self.settings.seed,
                                      str(self.device), self.data.source, 0, (), reason,
                                      self.precision) for k in keys]
        return dict(zip(keys, evaluations))

    @staticmethod
    def _callback(trial: optuna.Trial, proposal: Proposal):
        if not (proposal.prune or proposal.curve):
            return None

        def report(step: int, accuracy: float) -> bool:
            trial.report(accuracy, step)  # mean validation accuracy of the folds
            return proposal.prune and trial.should_prune()

        return report

    def _trial_id(self, trial: optuna.Trial) -> int:
        """The storage's id of ``trial`` (what storage methods take)."""
        return self.storage.get_trial_id_from_study_id_trial_number(self._study_id,
                                                                   trial.number)

    def _write(self, trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
        """Store ``attrs`` on ``trial`` in one write (``storage.set_trial_user_attrs``)."""
        set_trial_user_attrs(self.storage, self._trial_id(trial), attrs)

    def _label(self, trial: optuna.Trial, proposal: Proposal) -> None:
        """Label a starting trial with this worker and the proposal's attributes.

        ``recover_dead_trials`` needs the worker label while the trial runs. A cell queued
        by ``enqueue_owned`` already carries it (and a claim's attributes): only what
        differs from what ``ask`` read is written, usually nothing on the grid.
        """
        stored = trial.user_attrs
        labels = {"worker": worker_id(), **proposal.attrs}
        missing = {key: value for key, value in labels.items()
                   if key not in stored or stored[key] != value}
        if missing:
            self._write(trial, missing)

    def _reuse(self, trial: optuna.Trial, proposal: Proposal, hit: _Stored) -> Outcome:
        attrs = {name: hit.attrs[name] for name in _SCORE_ATTRS if name in hit.attrs}
        attrs["reused_from"] = hit.number
        self.reused += 1
        if hit.value is None:
            return self._tell(trial, proposal, TrialState.FAIL, None, attrs, trained=False)
        state = TrialState.COMPLETE if proposal.complete else TrialState.PRUNED
        if state == TrialState.PRUNED:
            trial.report(hit.value, 0)  # a pruned trial's value is its last report
        return self._tell(trial, proposal, state, hit.value, attrs, trained=False)

    def _record(self, trial: optuna.Trial, proposal: Proposal, key: str,
                evaluation: Evaluation) -> Outcome:
        epochs = evaluation.config.train.epochs
        if evaluation.stopped_at is not None:
            self.evaluated += 1
            attrs = {"stopped_at_step": evaluation.stopped_at,
                     # The epochs it trained (steps count on across groups of unequal folds).
                     "budget": evaluation.stopped_at % epochs + 1}
            return self._tell(trial, proposal, TrialState.PRUNED, self._last_report(trial),
                              attrs)
        self.evaluated += 1
        attrs = {} if "budget" in proposal.attrs else {"budget": epochs}
        stored = self._scores(key, evaluation)
        attrs.update(stored)
        if evaluation.failed:
            self.failed += 1
            self._cache[key] = _Stored(trial.number, None, stored)
            return self._tell(trial, proposal, TrialState.FAIL, None, attrs)
        value = evaluation.accuracy_mean
        self._cache[key] = _Stored(trial.number, value, stored)
        state = TrialState.COMPLETE if proposal.complete else TrialState.PRUNED
        if state == TrialState.PRUNED and not (proposal.curve or proposal.prune):
            trial.report(value, 0)
        return self._tell(trial, proposal, state, value, attrs)

    def _tell(self, trial: optuna.Trial, proposal: Proposal, state: TrialState,
              value: Optional[float], attrs: Mapping[str, Any],
              trained: bool = True) -> Outcome:
        """Store ``attrs`` and the proposal's ``before_tell`` ones in one write, then tell."""
        outcome = Outcome(trial.number, state, value, trained)
        attrs = dict(attrs)
        if proposal.before_tell is not None:
            attrs.update(proposal.before_tell(outcome))
        self._write(trial, attrs)
        if state == TrialState.COMPLETE:
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=state)
        return outcome

    def _last_report(self, trial: optuna.Trial) -> Optional[float]:
        """The last value ``trial`` reported: what Optuna stores as a pruned trial's value."""
        stored = self.storage.get_trial(self._trial_id(trial))
        steps = stored.intermediate_values
        return steps[max(steps)] if steps else None

    @staticmethod
    def _scores(key: str, evaluation: Evaluation) -> dict[str, Any]:
        """The attributes holding an evaluation's scores (``_SCORE_ATTRS``)."""
        report = evaluation.to_dict()
        stored: dict[str, Any] = {"config_key": key}
        for name in _SCORE_ATTRS[1:-1]:
            value = report.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            stored[name] = value
        if not evaluation.runs or len(stored.get("draw_means") or []) < 2:
            stored.pop("draw_means", None)
        if evaluation.failed:
            stored["fail_reason"] = evaluation.failed
        return stored
