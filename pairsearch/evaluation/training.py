"""Train models on pairs held as tensors on the device, and score them.

No DataLoader: the pairs are a few hundred kilobytes, so each epoch is a
``randperm`` and slices of resident tensors (airbench's way). The loss is read
back once per epoch, not per step, to check for divergence. ``train_ensemble``
trains all the runs of an evaluation at once (see ``models.ensemble``);
``train_model`` is the plain one-model loop it is checked against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from pairsearch.data import PairSet
from pairsearch.evaluation.augment import augment_digits
from pairsearch.evaluation.config import ScoringMode, TrainConfig
from pairsearch.evaluation.losses import LossRecipe
from pairsearch.evaluation.optimizers import Optimizer, make_optimizer
from pairsearch.models import ModelOutput
from pairsearch.models.blocks import random_stream
from pairsearch.models.ensemble import Ensemble

_SCORE_CHUNK = 4096  # pairs per forward pass when scoring


@dataclass(frozen=True)
class TrainOutcome:
    """How a training ended.

    Attributes:
        final_loss: Mean training loss over the last epoch run.
        failed: Why training stopped early (a NaN or infinite loss), else ``None``.
        stopped: Whether ``after_epoch`` stopped the training before its last epoch.
    """

    final_loss: float
    failed: Optional[str] = None
    stopped: bool = False


@dataclass(frozen=True)
class Scores:
    """Scores of a trained model on a set of pairs.

    Attributes:
        accuracy: Fraction of pairs whose comparison is predicted right.
        f1: F1 score of the "a ≤ b" class.
        digit_accuracy: Fraction of digits classified right, ``None`` without digit heads.
    """

    accuracy: float
    f1: float
    digit_accuracy: Optional[float]


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """The mini-batches of one epoch over ``n`` shuffled pairs.

    A last batch of a single pair is dropped (BatchNorm cannot train on one
    example); every other pair is seen once per epoch.
    """
    batch = min(batch_size, n)
    slices = [slice(start, min(start + batch, n)) for start in range(0, n, batch)]
    if n > 1 and slices[-1].stop - slices[-1].start == 1:
        slices.pop()
    return slices


def _divergence(value: float, epoch: int) -> Optional[str]:
    """Why a training stops if its epoch loss is not finite, else ``None``."""
    return None if math.isfinite(value) else f"loss became {value} at epoch {epoch + 1}"


def train_model(model: nn.Module, pairs: PairSet, config: TrainConfig,
                generator: torch.Generator,
                after_epoch: Callable[[int], Optional[bool]] | None = None,
                recipe: LossRecipe | None = None) -> TrainOutcome:
    """Train ``model`` in place on ``pairs``: the plain one-model loop.

    ``train_ensemble`` trains several models at once and is what the evaluator
    uses; this loop is its reference (tests check they agree) and the simplest
    reading of the training procedure.

    Args:
        model: A freshly initialised model on the pairs' device.
        pairs: Training pairs, already on the device.
        config: Training options.
        generator: Random generator on the pairs' device, for the shuffles.
        after_epoch: Called with the epoch index (0-based) after each epoch; returning
            ``True`` stops the training there (``stopped`` in the outcome).
        recipe: The loss (default: ``config``'s comparison + λ × digit losses).

    Returns:
        The last epoch's mean loss, or the reason training stopped.
    """
    recipe = recipe or config.loss_recipe()
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr)
    n = len(pairs)
    device = pairs.inputs.device
    slices = batch_slices(n, config.batch_size)
    last = float("nan")
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        running = torch.zeros((), device=device)
        seen = 0
        for part in slices:
            index = order[part]
            inputs = augment_digits(pairs.inputs[index], config.shift, config.rotate, generator)
            with random_stream(generator):
                output = model(inputs)
            loss = recipe(output, pairs.targets[index], pairs.classes[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach() * len(index)
            seen += len(index)
        last = float(running / seen)  # one host sync per epoch
        failure = _divergence(last, epoch)
        if failure is not None:
            return TrainOutcome(last, failure)
        if after_epoch is not None and after_epoch(epoch):
            return TrainOutcome(last, stopped=True)
    return TrainOutcome(last)


@dataclass(frozen=True)
class EnsembleOutcome:
    """How the training of an ensemble ended.

    Attributes:
        final_losses: Each member's mean training loss over the last epoch it ran.
        diverged: Member → why its training stopped (a NaN or infinite loss).
        stopped: Members whose training ``after_epoch`` stopped.
    """

    final_losses: list[float]
    diverged: dict[int, str] = field(default_factory=dict)
    stopped: frozenset[int] = frozenset()
    optimizer: Optional[Optimizer] = None


def train_ensemble(ensemble: Ensemble, pairs: PairSet, train_index: Sequence[torch.Tensor],
                   config: TrainConfig, generators: Sequence[torch.Generator],
                   after_epoch: Callable[[int, dict[int, str]], Iterable[int] | None]
                   | None = None,
                   recipes: Sequence[LossRecipe] | None = None,
                   lrs: Sequence[float] | None = None, start_epoch: int = 0,
                   optimizer_states: Sequence[dict] | None = None) -> EnsembleOutcome:
    """Train every member of ``ensemble`` at once, each on its own pairs and shuffles.

    Member m sees exactly what ``train_model`` would show it with
    ``pairs.subset(train_index[m])`` and ``generators[m]``: the same shuffles, the
    same mini-batches and the same dropout masks. The loss minimised is the sum of
    the members' own mean losses, so each member's gradient is the one it would get
    alone, and one optimizer over the stacked weights acts as one optimizer per
    member. Members may differ in loss (``recipes``) and learning rate (``lrs``): the
    optimizer, batch size and epochs of ``config`` are shared. The losses are read back
    once per epoch, never per step.

    A member whose loss stops being finite stops training (``diverged``); so do the
    members ``after_epoch`` names. The others go on, unaffected: every member's
    arithmetic is its own. Training ends early once no member is left.

    Args:
        ensemble: Freshly initialised members on the pairs' device.
        pairs: All pairs, on the device.
        train_index: Each member's training pairs (indices into ``pairs``).
        config: Training options (optimizer, batch size, epochs; and loss and learning
            rate where ``recipes`` or ``lrs`` are not given).
        generators: One random generator per member, on the device, for its shuffles
            and dropout masks.
        after_epoch: Called as ``after_epoch(epoch, diverged_now)`` after each epoch, with
            the members that diverged in it and why; returns the members to stop.
        recipes: Each member's loss.
        lrs: Each member's learning rate.
        start_epoch: Continue a training that has run this many epochs: the members'
            weights and ``generators`` are where it left them, and ``optimizer_states``
            (``Optimizer.member_state`` of each) restore the optimizer; with the learning
            rate constant, the result equals training from scratch to ``config.epochs``.
        optimizer_states: Each member's optimizer state, with ``start_epoch``.

    Returns:
        Each member's last-epoch loss, the members that diverged and those stopped, and
        the optimizer (whose ``member_state`` a later continuation needs).

    Raises:
        ValueError: If the members would take different numbers of steps per epoch
            (the evaluator groups runs so that they never do).
    """
    members = ensemble.size
    recipes = list(recipes) if recipes is not None else [config.loss_recipe()] * members
    sizes = [len(index) for index in train_index]
    slices = [batch_slices(n, config.batch_size) for n in sizes]
    if len({len(s) for s in slices}) != 1:
        raise ValueError(f"members take different numbers of steps per epoch ({sizes} pairs)")
    optimizer = make_optimizer(config.optimizer, ensemble.parameters(), config.lr,
                               list(lrs) if lrs is not None else None)
    if optimizer_states is not None:
        optimizer.load_member_states(optimizer_states)
    device = pairs.inputs.device
    # Pairs per member and step, made once: a host-to-device copy inside the loop would
    # synchronise with the GPU at every step.
    counts = torch.tensor([[s[step].stop - s[step].start for s in slices]
                           for step in range(len(slices[0]))], device=device)
    seen = counts.sum(dim=0)
    last = [float("nan")] * members
    alive = list(range(members))
    diverged: dict[int, str] = {}
    stopped: set[int] = set()
    for epoch in range(start_epoch, config.epochs):
        ensemble.train()
        orders = [index[torch.randperm(len(index), generator=g, device=device)]
                  for index, g in zip(train_index, generators)]
        running = torch.zeros(members, device=device)
        for step in range(len(slices[0])):
            batches = [order[s[step]] for order, s in zip(orders, slices)]
            optimizer.zero_grad(set_to_none=True)
            inputs = [augment_digits(pairs.inputs[batch], config.shift, config.rotate, g)
                      for batch, g in zip(batches, generators)]
            if ensemble.engine == "vmap":
                losses = _vmap_step(ensemble, pairs, batches, inputs, recipes, alive)
            else:
                losses = _loop_step(ensemble, pairs, batches, inputs, recipes, generators,
                                    alive)
            optimizer.step()
            running += losses * counts[step]
        epoch_losses = (running / seen).tolist()  # one host sync per epoch
        diverged_now = {}
        for member in alive:
            last[member] = epoch_losses[member]
            failure = _divergence(epoch_losses[member], epoch)
            if failure is not None:
                diverged_now[member] = failure
        diverged.update(diverged_now)
        alive = [m for m in alive if m not in diverged]
        if after_epoch is not None:
            stop = set(after_epoch(epoch, diverged_now) or ()) & set(alive)
            stopped |= stop
            alive = [m for m in alive if m not in stop]
        if not alive:
            break
    return EnsembleOutcome(last, diverged, frozenset(stopped), optimizer)


def _loop_step(ensemble: Ensemble, pairs: PairSet, batches: list[torch.Tensor],
               inputs: list[torch.Tensor], recipes: Sequence[LossRecipe],
               generators: Sequence[torch.Generator], alive: list[int]) -> torch.Tensor:
    """Forward and backward of every live member, one after the other, each on its batch's
    ``inputs`` (augmented where the training says); their (detached) losses, zero for the
    members that no longer train."""
    states = ensemble.member_states()
    losses = []
    for member in alive:
        index = batches[member]
        with random_stream(generators[member]):
            output = ensemble.run_member(states[member], inputs[member])
        losses.append(recipes[member](output, pairs.targets[index], pairs.classes[index]))
    loss = torch.stack(losses)
    loss.sum().backward()
    if len(alive) == ensemble.size:
        return loss.detach()
    every = torch.zeros(ensemble.size, device=loss.device)
    every[alive] = loss.detach()
    return every


def _vmap_step(ensemble: Ensemble, pairs: PairSet, batches: list[torch.Tensor],
               inputs: list[torch.Tensor], recipes: Sequence[LossRecipe],
               alive: list[int]) -> torch.Tensor:
    """Forward and backward of every member in one vectorised pass (members that no
    longer train run too, but their losses are left out of the sum)."""
    outputs = ensemble(torch.stack(inputs))
    loss = torch.stack([recipe(out, pairs.targets[b], pairs.classes[b])
                        for recipe, out, b in zip(recipes, outputs, batches)])
    if len(alive) == ensemble.size:
        loss.sum().backward()
        return loss.detach()
    loss[alive].sum().backward()
    every = torch.zeros_like(loss.detach())
    every[alive] = loss.detach()[alive]
    return every


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, mode: ScoringMode = "eval",
            generator: Optional[torch.Generator] = None) -> ModelOutput:
    """The model's outputs, in chunks, in eval mode (or ``mode="train"``: dropout masks
    drawn from ``generator``, BatchNorm on each chunk's statistics)."""
    model.train(mode == "train")
    with random_stream(generator):
        outputs = [model(inputs[i:i + _SCORE_CHUNK])
                   for i in range(0, len(inputs), _SCORE_CHUNK)]
    digits = outputs[0].digit_a is not None
    return ModelOutput(
        torch.cat([o.pair for o in outputs]),
        torch.cat([o.digit_a for o in outputs]) if digits else None,
        torch.cat([o.digit_b for o in outputs]) if digits else None,
    )


def f1_of(predicted: torch.Tensor, targets: torch.Tensor) -> float:
    """F1 of the "a ≤ b" class (1): 2·TP / (2·TP + FP + FN), 0 when undefined.

    The formula scikit-learn's ``f1_score(zero_division=0)`` computes, in three
    tensor sums: importing ``sklearn.metrics`` for it costs about a second of
    start-up on every command.
    """
    true_positive = int(((predicted == 1) & (targets == 1)).sum())
    wrong = int((predicted != targets).sum())
    denominator = 2 * true_positive + wrong
    return 2 * true_positive / denominator if denominator else 0.0


def score_model(model: nn.Module, pairs: PairSet, mode: ScoringMode = "eval",
                generator: Optional[torch.Generator] = None) -> Scores:
    """Accuracy, F1 and digit accuracy of ``model`` on ``pairs``, scored in ``mode``
    (see ``predict``; ``train`` mode updates BatchNorm's running statistics)."""
    output = predict(model, pairs.inputs, mode, generator)
    predicted = output.pair.argmax(dim=1)
    accuracy = float((predicted == pairs.targets).float().mean())
    f1 = f1_of(predicted, pairs.targets)
    digit_accuracy = None
    if output.digit_a is not None and output.digit_b is not None:
        right = torch.cat([output.digit_a.argmax(1) == pairs.classes[:, 0],
                           output.digit_b.argmax(1) == pairs.classes[:, 1]])
        digit_accuracy = float(right.float().mean())
    return Scores(accuracy, f1, digit_accuracy)


def accuracy_of(model: nn.Module, pairs: PairSet) -> float:
    """Pair accuracy only (cheap enough to call after every epoch)."""
    predicted = predict(model, pairs.inputs).pair.argmax(dim=1)
    return float((predicted == pairs.targets).float().mean())


def mean_or_none(values: list[Optional[float]]) -> Optional[float]:
    """Mean of the values, ``None`` if any is ``None`` or there are none."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))
