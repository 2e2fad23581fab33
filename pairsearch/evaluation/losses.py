"""The five loss names, each a distinct function of logits ``z`` (B, C) and a class target ``t``.

=====  ========================================================  ===============================
name   value per example                                         what it is
=====  ========================================================  ===============================
ce     −log softmax(z)_t                                         cross-entropy (torch CrossEntropyLoss)
nll    −z_t                                                      torch NLLLoss on the raw logits, as
                                                                 in report 002's grid: the logits are
                                                                 taken to be log-probabilities
                                                                 already. Unbounded below, so it can
                                                                 diverge; that is reported as a
                                                                 failed evaluation.
mse    mean_c (softmax(z)_c − onehot(t)_c)²                      Brier score of the probabilities
l1     mean_c |softmax(z)_c − onehot(t)_c|                       L1 distance of the probabilities
sce    −log softmax(softmax(z))_t                                a softmax output layer followed by
                                                                 torch's CrossEntropyLoss, as in
                                                                 report 004 ("softmax for final
                                                                 logits", "Loss: cross-entropy"):
                                                                 the second softmax sees inputs in
                                                                 [0, 1], so its gradient stays small
                                                                 and the loss cannot go below
                                                                 −log(e / (e + C − 1)).
=====  ========================================================  ===============================

All are averaged over the batch. The pair output of ``naive`` already is a
log-probability, so its ``nll`` equals its ``ce``; that is the model's doing,
not the loss's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, Optional

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from pairsearch.models import ModelOutput

LossName = Literal["ce", "nll", "mse", "l1", "sce"]
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``ce``: −log softmax(z)_t, averaged over the batch."""
    return F.cross_entropy(logits, target)


def raw_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``nll``: −z_t, torch's NLLLoss applied to logits that were never log-softmaxed."""
    return F.nll_loss(logits, target)


def brier(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mse``: mean squared error between softmax probabilities and the one-hot target."""
    return F.mse_loss(logits.softmax(dim=1), F.one_hot(target, logits.shape[1]).to(logits.dtype))


def probability_l1(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``l1``: mean absolute error between softmax probabilities and the one-hot target."""
    return F.l1_loss(logits.softmax(dim=1), F.one_hot(target, logits.shape[1]).to(logits.dtype))


def softmax_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sce``: cross-entropy of the softmax probabilities taken as logits (softmax twice)."""
    return F.cross_entropy(logits.softmax(dim=1), target)


LOSSES: dict[str, LossFunction] = {
    "ce": cross_entropy,
    "nll": raw_nll,
    "mse": brier,
    "l1": probability_l1,
    "sce": softmax_cross_entropy,
}


@dataclass(frozen=True)
class LossRecipe:
    """What one training minimises, given a model's outputs.

    loss = comparison(pair) + weight × (digit(a) + digit(b)) [+ weight × comparison(pair_aux)]

    or, with ``weight_on="comparison"`` (report 003's loss, digit1 + digit2 + λ·binary):

    loss = weight × comparison(pair) + digit(a) + digit(b)

    The digit terms apply to models with digit heads, the last term to models with an
    intermediate pair output (report 000's AUX1). A model whose pair output is not
    trained (``comparison=None``: report 002's naive model compares the predicted
    classes, which sends no gradient back) minimises the digit losses alone, unweighted.

    Attributes:
        comparison: Loss name of the pair output, or ``None``.
        digit: Loss name of each digit head.
        weight: λ, the weight of the digit losses and of the intermediate pair loss.
        weight_on: ``digits`` (ours) or ``comparison`` (report 003's): which term λ weighs.
    """

    comparison: Optional[str] = "ce"
    digit: str = "ce"
    weight: float = 1.0
    weight_on: str = "digits"

    def __call__(self, output: "ModelOutput", targets: torch.Tensor,
                 classes: torch.Tensor) -> torch.Tensor:
        """The loss of a batch: ``targets`` (B,) pair targets, ``classes`` (B, 2) digits."""
        digits = None
        if output.digit_a is not None and output.digit_b is not None:
            digit = LOSSES[self.digit]
            digits = digit(output.digit_a, classes[:, 0]) + digit(output.digit_b, classes[:, 1])
        if self.comparison is None:
            if digits is None:
                raise ValueError("a loss without its comparison term needs digit heads")
            return digits
        compare = LOSSES[self.comparison]
        loss = compare(output.pair, targets)
        if digits is not None and self.weight_on == "comparison":
            return self.weight * loss + digits
        if digits is not None:
            loss = loss + self.weight * digits
        if output.pair_aux is not None:
            loss = loss + self.weight * compare(output.pair_aux, targets)
        return loss
