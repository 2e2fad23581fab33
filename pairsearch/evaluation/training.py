"""Train one model on pairs held as tensors on the device, and score it.

No DataLoader: the pairs are a few hundred kilobytes, so each epoch is a
``randperm`` and slices of resident tensors (airbench's way). The loss is read
back once per epoch, not per step, to check for divergence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from pairsearch.data import PairSet
from pairsearch.evaluation.config import TrainConfig
from pairsearch.evaluation.losses import LOSSES
from pairsearch.evaluation.optimizers import make_optimizer
from pairsearch.models import ModelOutput

_SCORE_CHUNK = 4096  # pairs per forward pass when scoring


@dataclass(frozen=True)
class TrainOutcome:
    """How a training ended.

    Attributes:
        final_loss: Mean training loss over the last epoch run.
        failed: Why training stopped early (a NaN or infinite loss), else ``None``.
    """

    final_loss: float
    failed: Optional[str] = None


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


def total_loss(output: ModelOutput, targets: torch.Tensor, classes: torch.Tensor,
               config: TrainConfig) -> torch.Tensor:
    """comparison + lambda × (digit_a + digit_b) [+ lambda × intermediate comparison]."""
    comparison = LOSSES[config.comparison_loss]
    loss = comparison(output.pair, targets)
    if output.digit_a is not None and output.digit_b is not None:
        digit = LOSSES[config.digit_loss]
        loss = loss + config.lambda_ * (digit(output.digit_a, classes[:, 0])
                                        + digit(output.digit_b, classes[:, 1]))
    if output.pair_aux is not None:
        loss = loss + config.lambda_ * comparison(output.pair_aux, targets)
    return loss


def train_model(model: nn.Module, pairs: PairSet, config: TrainConfig,
                generator: torch.Generator,
                after_epoch: Callable[[int], None] | None = None) -> TrainOutcome:
    """Train ``model`` in place on ``pairs``.

    Args:
        model: A freshly initialised model on the pairs' device.
        pairs: Training pairs, already on the device.
        config: Training options.
        generator: Random generator on the pairs' device, for the shuffles.
        after_epoch: Called with the epoch index (0-based) after each epoch.

    Returns:
        The last epoch's mean loss, or the reason training stopped.
    """
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr)
    n = len(pairs)
    batch = min(config.batch_size, n)
    device = pairs.inputs.device
    last = float("nan")
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        running = torch.zeros((), device=device)
        seen = 0
        for start in range(0, n, batch):
            index = order[start:start + batch]
            if len(index) == 1 and n > 1:
                continue  # BatchNorm cannot train on a batch of one; skip that last pair
            loss = total_loss(model(pairs.inputs[index]), pairs.targets[index],
                              pairs.classes[index], config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach() * len(index)
            seen += len(index)
        last = float(running / seen)  # one host sync per epoch
        if not math.isfinite(last):
            return TrainOutcome(last, f"loss became {last} at epoch {epoch + 1}")
        if after_epoch is not None:
            after_epoch(epoch)
    return TrainOutcome(last)


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor) -> ModelOutput:
    """The model's outputs in eval mode, in chunks."""
    model.eval()
    outputs = [model(inputs[i:i + _SCORE_CHUNK]) for i in range(0, len(inputs), _SCORE_CHUNK)]
    digits = outputs[0].digit_a is not None
    return ModelOutput(
        torch.cat([o.pair for o in outputs]),
        torch.cat([o.digit_a for o in outputs]) if digits else None,
        torch.cat([o.digit_b for o in outputs]) if digits else None,
    )


def score_model(model: nn.Module, pairs: PairSet) -> Scores:
    """Accuracy, F1 and digit accuracy of ``model`` on ``pairs``."""
    output = predict(model, pairs.inputs)
    predicted = output.pair.argmax(dim=1)
    accuracy = float((predicted == pairs.targets).float().mean())
    f1 = float(f1_score(pairs.targets.cpu().numpy(), predicted.cpu().numpy(), zero_division=0))
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
