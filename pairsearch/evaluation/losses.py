"""The four loss names, each a distinct function of logits ``z`` (B, C) and a class target ``t``.

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
=====  ========================================================  ===============================

All are averaged over the batch. The pair output of ``naive`` already is a
log-probability, so its ``nll`` equals its ``ce``; that is the model's doing,
not the loss's.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F

LossName = Literal["ce", "nll", "mse", "l1"]
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


LOSSES: dict[str, LossFunction] = {
    "ce": cross_entropy,
    "nll": raw_nll,
    "mse": brier,
    "l1": probability_l1,
}
