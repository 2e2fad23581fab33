"""The vocabulary the search layer shares: a study's protocol, proposals, outcomes, keys.

The driver, the trial evaluator and the strategies all speak these types; none of them
owns them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional

import optuna
from optuna.trial import TrialState

from pairsearch.data import INPUTS
from pairsearch.errors import BadValue
from pairsearch.evaluation import Protocol
from pairsearch.names import DEFAULT_SOURCE
from pairsearch.search.space import Cell, SearchSpace

__all__ = ["WAIT", "Cell", "Outcome", "Proposal", "SearchSettings", "Verdict", "Wait",
           "cell_key", "distributions"]


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
        train_accuracy: Also score each run on its own training pairs (the trials'
            ``train_accuracies``): a forward pass over them that searches skip (about a
            sixth of a 1-epoch trial); experiment stages whose table reports a training
            accuracy turn it on. Not part of the protocol: it changes no score.
        table: A tabular benchmark file (``search.table``): trials are answered from it
            instead of trained. Part of the protocol: a replayed study never mixes with
            a trained one.

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
    train_accuracy: bool = False
    table: Optional[str] = None

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
                    "inputs", "train_accuracy", "table"):
            meta.pop(key)
        if self.kind == "test":
            meta.pop("folds")
        if self.draws != 1:
            meta["draws"] = self.draws
        if self.inputs != "standardised":
            meta["inputs"] = self.inputs
        if self.table is not None:
            meta["table"] = self.table
        return {"kind": self.kind, "repeats": self.repeats, **meta}


def cell_key(cell: Mapping[str, Any]) -> str:
    """Canonical string of a cell (its stored params)."""
    return json.dumps(dict(cell), sort_keys=True)


def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """One categorical distribution per dimension, the values in file order."""
    return {name: optuna.distributions.CategoricalDistribution(list(values))
            for name, values in space.params.items()}


@dataclass(frozen=True)
class Proposal:
    """A cell a strategy wants evaluated, and how.

    Attributes:
        cell: The cell; ``None`` lets the study's sampler choose (TPE).
        attrs: User attributes stored with the trial (the GA's generation, a rung).
        claim: Claim the cell against other workers (the grid's rule: the lowest-numbered
            live trial of a claim runs it; a duplicate is dropped as PRUNED).
        label: What is claimed (default: the cell's key).
        epochs: Training budget, when not the protocol's. Below the protocol's epochs,
            the result is a low-budget one: told PRUNED, kept apart from the study's best.
        prune: Report the per-epoch mean validation accuracy to the study's pruner.
        curve: Report the per-epoch values without pruning (a learning curve).
        keep_state: Save the trainings' state at the end (a checkpoint), for a longer
            budget of the same configuration to continue from (a halving rung's survivors).
        resume: Continue from the configuration's checkpoint at a smaller budget, if the
            study has one, instead of training from epoch 0 (the same scores).
    """

    cell: Optional[Cell]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    claim: bool = False
    label: Optional[str] = None
    epochs: Optional[int] = None
    prune: bool = False
    curve: bool = False
    keep_state: bool = False
    resume: bool = False


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
class Verdict:
    """What the trial evaluator concluded about one trial: what the driver tells.

    Attributes:
        state: COMPLETE, PRUNED (stopped by the pruner, or a low-budget result) or FAIL.
        value: The trial's value (COMPLETE), its last reported value (PRUNED) or ``None``.
        attrs: User attributes to store with it, in the same write as any the strategy
            adds.
        trained: Whether it trained (``False``: a stored result was reused).
        report: A value to report at step 0 before telling PRUNED: a low-budget result
            that reported no epochs (Optuna's value of a pruned trial is its last report).
    """

    state: TrialState
    value: Optional[float]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    trained: bool = True
    report: Optional[float] = None


class Wait:
    """Returned by ``Strategy.propose`` when other workers hold the work left for now."""


WAIT = Wait()
