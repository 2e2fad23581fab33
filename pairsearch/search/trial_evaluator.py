"""The trial evaluator: the reuse cache and the evaluation of asked trials, never telling.

A trial's value is the mean K-fold CV accuracy on the training pairs (the test
pairs are never seen by a search); its user attributes hold the per-fold
accuracies, std, F1, digit accuracy, parameter count, training seconds,
device, data source and protocol. A diverging configuration is a FAIL trial
with its reason. A configuration already stored in the study (equivalent cells
included: options a model ignores) is not retrained: its scores are copied and
the trial is marked ``reused_from``. A proposal that asks for it keeps its trainings'
state (``store.checkpoints``) or continues from the one a smaller budget of the same
configuration kept (successive halving's survivors). The evaluator returns a ``Verdict``
per trial; the driver (``search.driver``) stores its attributes in one write and tells
the study.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Sequence

import optuna
import torch
from optuna.trial import TrialState

from pairsearch.data import generate_draws, load_pools
from pairsearch.errors import BadValue, PairsearchError
from pairsearch.evaluation import (
    Config,
    Evaluation,
    TrainingState,
    evaluate,
    evaluate_many,
    resolve_device,
    resolve_precision,
    stratified_folds,
)
from pairsearch.names import Attr
from pairsearch.search.space import SearchSpace
from pairsearch.search.store.checkpoints import CheckpointStore, resume_key, study_folder
from pairsearch.search.store.queries import is_result, result_value
from pairsearch.search.store.storage import set_trial_user_attrs, storage_file
from pairsearch.search.table import Table
from pairsearch.search.types import Proposal, SearchSettings, Verdict
from pairsearch.search.workers import Heartbeat, worker_id

REFRESH_SECONDS = 5.0
"""How often the evaluator looks for results other workers stored, at most."""

# Attributes copied from an earlier trial when its result is reused.
_SCORE_ATTRS = (Attr.CONFIG_KEY, Attr.ACCURACIES, Attr.ACCURACY_STD, "f1_mean",
                "digit_accuracy_mean", "final_loss_mean", "params", "train_seconds", "device",
                "precision", "cpu_threads", "data", "protocol", "draw_means",
                "train_accuracies", Attr.FAIL_REASON)


@dataclass(frozen=True)
class _Stored:
    """A configuration's first result in the study."""

    number: int
    value: Optional[float]
    attrs: Mapping[str, Any]


class TrialEvaluator:
    """Evaluates the asked trials of one space under one protocol, reusing stored results.

    Everything that can be checked without training is checked here, before any study
    is opened: the data source, the pair counts, the folds, the device and precision.
    It writes only a starting trial's labels (the worker, which ``recover_dead_trials``
    needs while the trial runs) and the per-epoch reports a pruner reads; the driver
    tells.

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
        self.protocol = settings.protocol
        self.table: Optional[Table] = None
        if settings.table is not None:  # answered from a tabular benchmark: no data
            self.table = Table.load(settings.table)
            self.table.check(settings.protocol_meta())
            self.draws, self.data = [], None
            self._init_study()
            return
        pools = load_pools(settings.data)
        self.draws = generate_draws(pools, settings.train_pairs, settings.test_pairs,
                                    settings.seed, settings.draws, settings.inputs)
        self.data = self.draws[0]
        if self.protocol.kind == "cv":
            for draw in self.draws:  # K-fold needs K pairs of the rarer target class
                stratified_folds(draw.train.targets, self.protocol.folds, 0)
        self._init_study()

    def _init_study(self) -> None:
        self.study: Optional[optuna.Study] = None
        self.storage: Optional[optuna.storages.BaseStorage] = None
        self._study_id: Optional[int] = None
        self._cache: dict[str, _Stored] = {}
        self._seen: set[int] = set()
        self._refreshed = float("-inf")
        self.checkpoints: Optional[CheckpointStore] = None
        self._curves: dict[int, list[tuple[int, float]]] = {}

    def bind(self, study: optuna.Study, storage: optuna.storages.BaseStorage
             ) -> "TrialEvaluator":
        """Evaluate for ``study`` from now on, reusing the results it already holds."""
        self.study, self.storage = study, storage
        self._study_id = storage.get_study_id_from_name(study.study_name)
        self._cache = {}
        self._seen: set[int] = set()
        self._refresh_cache()
        path = storage_file(storage)
        self.checkpoints = None if path is None or self.table else CheckpointStore(
            study_folder(path, study.study_name),
            {"protocol": self.settings.protocol_meta(), "device": self.device.type,
             "precision": self.precision, "torch": torch.__version__})
        return self

    def _refresh_cache(self, force: bool = True) -> None:
        """Learn the results stored since (by other workers too; ``queries.is_result``).

        Unless ``force``, at most once every ``REFRESH_SECONDS``: reading every trial of
        a 6,400-cell study takes a quarter of a second, and a result another worker
        stored a moment ago is only a chance to save a training, not a correctness matter.
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
            key = attrs.get(Attr.CONFIG_KEY)
            if key is None or Attr.REUSED_FROM in attrs or key in self._cache:
                continue
            if is_result(trial):
                self._cache[key] = _Stored(trial.number, result_value(trial), attrs)

    def config(self, cell: Mapping[str, Any], epochs: Optional[int] = None) -> Config:
        """The configuration a cell trains under this protocol (``epochs``: a budget)."""
        config = self.space.config(cell)
        epochs = epochs if epochs is not None else self.settings.epochs
        if epochs is not None:
            config = replace(config, train=replace(config.train, epochs=epochs))
        return config

    def measure(self, cell: Mapping[str, Any]) -> Evaluation:
        """Evaluate ``cell`` under the protocol outside any trial: retest's one score of
        its chosen configuration on the test pairs (stored with the retest study)."""
        data = self.draws if len(self.draws) > 1 else self.data
        return evaluate(self.config(cell), data, self.protocol, self.settings.seed,
                        self.device, precision=self.precision)

    def full_budget(self, cell: Mapping[str, Any]) -> int:
        """The epochs a cell trains under the protocol: a proposal's smaller budget gives
        a low-budget result."""
        return self.config(cell).train.epochs

    def label(self, trial: optuna.Trial, proposal: Proposal) -> None:
        """Label a starting trial with this worker and the proposal's attributes.

        ``recover_dead_trials`` needs the worker label while the trial runs. A cell queued
        by ``enqueue_owned`` already carries it (and a claim's attributes): only what
        differs from what ``ask`` read is written, usually nothing on the grid.
        """
        stored = trial.user_attrs
        labels = {Attr.WORKER: worker_id(), **proposal.attrs}
        missing = {key: value for key, value in labels.items()
                   if key not in stored or stored[key] != value}
        if missing:
            set_trial_user_attrs(self.storage, self.trial_id(trial), missing)

    def evaluate(self, asked: Sequence[tuple[optuna.Trial, Proposal]]) -> list[Verdict]:
        """Evaluate labelled, asked trials; those of one architecture train together.

        Each trial's cell is its own params (a claimed trial may hold another worker's
        queued cell). Stored results are reused; a configuration twice in the batch is
        trained once. An interruption (Ctrl-C, a bad setting found late) propagates: the
        driver fails the trials, which are not results, so their cells run again.
        """
        verdicts: list[Optional[Verdict]] = [None] * len(asked)
        pending: dict[str, list[int]] = {}
        configs: dict[str, Config] = {}
        for index, (trial, proposal) in enumerate(asked):
            config = self.config(dict(trial.params), proposal.epochs)
            key = config.key()
            if key not in self._cache and key not in pending:
                self._refresh_cache(force=False)
            if key in self._cache:
                verdicts[index] = self._reuse(trial, proposal, self._cache[key])
                continue
            pending.setdefault(key, []).append(index)
            configs[key] = config
        if pending:
            evaluations = self._evaluate(asked, pending, configs)
            for key, indices in pending.items():
                first, *others = indices
                trial, proposal = asked[first]
                verdicts[first] = self._record(trial, proposal, key, evaluations[key])
                for index in others:
                    hit = self._cache.get(key)
                    if hit is None:  # pruned before the end: nothing to share
                        verdicts[index] = self._record(*asked[index], key, evaluations[key])
                    else:
                        verdicts[index] = self._reuse(*asked[index], hit)
        return [v for v in verdicts if v is not None]

    def _resume_state(self, trial: optuna.Trial, proposal: Proposal, config: Config
                      ) -> tuple[Optional[TrainingState], list[tuple[int, float]]]:
        """The checkpoint ``trial`` continues from, if any, and the curve that led to it
        (reported to the trial again, so its learning curve starts at epoch 0)."""
        if not proposal.resume or self.checkpoints is None:
            return None, []
        found = self.checkpoints.load(resume_key(config), below=config.train.epochs)
        if found is None:
            return None, []
        state, curve = found
        earlier = [(step, value) for step, value in curve if step < state.epochs]
        if proposal.curve or proposal.prune:
            for step, value in earlier:
                trial.report(value, step)
        return state, earlier

    def _evaluate(self, asked: Sequence[tuple[optuna.Trial, Proposal]],
                  pending: dict[str, list[int]], configs: dict[str, Config]
                  ) -> dict[str, Evaluation]:
        keys = list(pending)
        leaders = [asked[pending[key][0]] for key in keys]
        resumed = [self._resume_state(trial, proposal, configs[key])
                   for (trial, proposal), key in zip(leaders, keys)]
        resume = [state for state, _ in resumed]
        callbacks = [self._callback(trial, proposal, earlier)
                     for (trial, proposal), (_, earlier) in zip(leaders, resumed)]
        keep = self.checkpoints is not None and any(p.keep_state for _, p in leaders)
        data = self.draws if len(self.draws) > 1 else self.data
        numbers = [asked[i][0].number for key in keys for i in pending[key]]
        ids = [asked[i][0]._trial_id for key in keys for i in pending[key]]  # as Optuna's own
        if self.table is not None:
            evaluations = self.table.evaluate_many([configs[k] for k in keys], self.protocol,
                                                   self.settings.seed, callbacks)
            return dict(zip(keys, evaluations))
        try:
            with Heartbeat(self.study, numbers, self.storage, ids):
                if len(keys) == 1:
                    evaluations = [evaluate(configs[keys[0]], data, self.protocol,
                                            self.settings.seed, self.device, callbacks[0],
                                            precision=self.precision,
                                            train_accuracy=self.settings.train_accuracy,
                                            keep_state=keep, resume=resume[0])]
                else:
                    evaluations = evaluate_many([configs[k] for k in keys], data, self.protocol,
                                                self.settings.seed, self.device, callbacks,
                                                precision=self.precision,
                                                train_accuracy=self.settings.train_accuracy,
                                                keep_state=keep, resume=resume)
        except (KeyboardInterrupt, PairsearchError):
            raise  # not a result: the driver fails the trials without a fail_reason
        except Exception as error:  # CUDA out of memory and other errors inside a trial
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            reason = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
            evaluations = [Evaluation(configs[k], self.protocol, self.settings.seed,
                                      str(self.device), self.data.source, 0, (), reason,
                                      self.precision) for k in keys]
        return dict(zip(keys, evaluations))

    def _callback(self, trial: optuna.Trial, proposal: Proposal,
                  earlier: Sequence[tuple[int, float]] = ()):
        """The epoch callback reporting to ``trial`` (and recording the curve a checkpoint
        keeps, after the ``earlier`` epochs of the one it continues), or ``None``."""
        curve = self._curves[trial.number] = list(earlier)
        if not (proposal.prune or proposal.curve):
            return None

        def report(step: int, accuracy: float) -> bool:
            trial.report(accuracy, step)  # mean validation accuracy of the folds
            curve.append((step, accuracy))
            return proposal.prune and trial.should_prune()

        return report

    def trial_id(self, trial: optuna.Trial | int) -> int:
        """The storage's id of ``trial`` (what storage methods take)."""
        number = trial if isinstance(trial, int) else trial.number
        return self.storage.get_trial_id_from_study_id_trial_number(self._study_id, number)

    def _low_budget(self, trial: optuna.Trial, proposal: Proposal) -> bool:
        return proposal.epochs is not None and \
            proposal.epochs < self.full_budget(dict(trial.params))

    def _reuse(self, trial: optuna.Trial, proposal: Proposal, hit: _Stored) -> Verdict:
        attrs = {name: hit.attrs[name] for name in _SCORE_ATTRS if name in hit.attrs}
        attrs[Attr.REUSED_FROM] = hit.number
        if hit.value is None:
            return Verdict(TrialState.FAIL, None, attrs, trained=False)
        if self._low_budget(trial, proposal):
            return Verdict(TrialState.PRUNED, hit.value, attrs, trained=False,
                           report=hit.value)
        return Verdict(TrialState.COMPLETE, hit.value, attrs, trained=False)

    def _record(self, trial: optuna.Trial, proposal: Proposal, key: str,
                evaluation: Evaluation) -> Verdict:
        epochs = evaluation.config.train.epochs
        if evaluation.stopped_at is not None:
            self._curves.pop(trial.number, None)
            attrs = {Attr.STOPPED_AT_STEP: evaluation.stopped_at,
                     # The epochs it trained (steps count on across groups of unequal folds).
                     Attr.BUDGET: evaluation.stopped_at % epochs + 1}
            return Verdict(TrialState.PRUNED, self._last_report(trial), attrs)
        attrs = {} if Attr.BUDGET in proposal.attrs else {Attr.BUDGET: epochs}
        stored = self._scores(key, evaluation)
        attrs.update(stored)
        self._checkpoint(trial, proposal, evaluation)
        if evaluation.resumed_from is not None:
            attrs[Attr.RESUMED_FROM] = evaluation.resumed_from
        if evaluation.failed:
            self._cache[key] = _Stored(trial.number, None, stored)
            return Verdict(TrialState.FAIL, None, attrs)
        value = evaluation.accuracy_mean
        self._cache[key] = _Stored(trial.number, value, stored)
        if self._low_budget(trial, proposal):
            reported = proposal.curve or proposal.prune
            return Verdict(TrialState.PRUNED, value, attrs,
                           report=None if reported else value)
        return Verdict(TrialState.COMPLETE, value, attrs)

    def _checkpoint(self, trial: optuna.Trial, proposal: Proposal,
                    evaluation: Evaluation) -> None:
        """Keep the trainings' state where the proposal asks; forget a used one otherwise
        (the last rung's survivors need theirs no more)."""
        curve = self._curves.pop(trial.number, [])
        if self.checkpoints is None:
            return
        key = resume_key(evaluation.config)
        if proposal.keep_state and evaluation.state is not None:
            self.checkpoints.save(key, evaluation.state, curve)
        elif evaluation.resumed_from is not None:
            self.checkpoints.remove(key)

    def finish(self, complete: bool) -> None:
        """The search loop ended: a complete search's checkpoints are of no more use."""
        if complete and self.checkpoints is not None:
            self.checkpoints.clear()

    def _last_report(self, trial: optuna.Trial) -> Optional[float]:
        """The last value ``trial`` reported: what Optuna stores as a pruned trial's value."""
        stored = self.storage.get_trial(self.trial_id(trial))
        steps = stored.intermediate_values
        return steps[max(steps)] if steps else None

    @staticmethod
    def _scores(key: str, evaluation: Evaluation) -> dict[str, Any]:
        """The attributes holding an evaluation's scores (``_SCORE_ATTRS``)."""
        report = evaluation.to_dict()
        stored: dict[str, Any] = {Attr.CONFIG_KEY: key}
        for name in _SCORE_ATTRS[1:-1]:
            value = report.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            stored[name] = value
        if not evaluation.runs or len(stored.get("draw_means") or []) < 2:
            stored.pop("draw_means", None)
        if evaluation.failed:
            stored[Attr.FAIL_REASON] = evaluation.failed
        return stored
