"""Each loss name is a distinct, documented function of the logits."""

from __future__ import annotations

import itertools

import pytest
import torch

from pairsearch.evaluation import LOSSES

Z = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
T = torch.tensor([0, 1])


def test_values_match_their_definitions():
    p = Z.softmax(1)
    onehot = torch.nn.functional.one_hot(T, 3).float()
    expected = {
        "ce": -(Z.log_softmax(1)[[0, 1], T]).mean(),
        "nll": -(Z[[0, 1], T]).mean(),
        "mse": ((p - onehot) ** 2).mean(),
        "l1": (p - onehot).abs().mean(),
        "sce": -(p.log_softmax(1)[[0, 1], T]).mean(),
    }
    assert set(LOSSES) == set(expected)
    for name, value in expected.items():
        assert torch.allclose(LOSSES[name](Z, T), value), name


def test_no_two_names_compute_the_same_thing():
    torch.manual_seed(0)
    z = torch.randn(16, 10, requires_grad=True)
    t = torch.randint(0, 10, (16,))
    grads = {}
    for name, loss in LOSSES.items():
        (grad,) = torch.autograd.grad(loss(z, t), z)
        grads[name] = grad.flatten()
    for a, b in itertools.combinations(LOSSES, 2):
        cosine = torch.nn.functional.cosine_similarity(grads[a], grads[b], dim=0)
        assert cosine < 0.999, f"{a} and {b} train the same way"


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_decreases_when_target_logit_grows(name):
    z = Z.clone()
    before = LOSSES[name](z, T)
    z[[0, 1], T] += 1.0
    assert LOSSES[name](z, T) < before


def test_softmax_twice_cannot_go_below_its_floor():
    # Report 004's softmax before CrossEntropyLoss: even a perfect, confident network pays
    # -log(e / (e + C - 1)), which is why its digit heads learn slowly.
    confident = torch.tensor([[50.0, 0.0, 0.0]])
    floor = -torch.log(torch.tensor(torch.e / (torch.e + 2)))
    assert torch.allclose(LOSSES["sce"](confident, torch.tensor([0])), floor, atol=1e-6)
    assert LOSSES["ce"](confident, torch.tensor([0])) < 1e-6
