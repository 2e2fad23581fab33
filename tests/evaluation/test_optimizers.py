"""The optimizers update weights exactly as torch.optim's classes do, without importing dynamo."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

import pytest
import torch

from pairsearch.evaluation.optimizers import (OptimizerName, fused_on, make_optimizer,
                                              torch_defaults)

CLASSES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad,
           "adamw": torch.optim.AdamW}


def weights(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(5, 3, 2, 2), (7,), (4, 6)]
    return [torch.nn.Parameter(torch.randn(s, generator=generator)) for s in shapes]


def test_every_configurable_optimizer_is_covered() -> None:
    assert set(get_args(OptimizerName)) == set(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
@pytest.mark.parametrize("lr", [0.1, 1e-3])
def test_updates_equal_torch_optim(name: str, lr: float) -> None:
    ours, theirs = weights(0), weights(0)
    mine = make_optimizer(name, ours, lr)
    assert mine.fused == fused_on(torch.device("cpu"))
    reference = CLASSES[name](theirs, lr=lr, fused=mine.fused or None)
    generator = torch.Generator().manual_seed(1)
    for step in range(8):
        grads = [torch.randn(p.shape, generator=generator) for p in ours]
        for index, (a, b, g) in enumerate(zip(ours, theirs, grads)):
            # The last parameter sits out every third step, as a frozen or unused one would.
            has_grad = not (index == 2 and step % 3 == 1)
            a.grad = g.clone() if has_grad else None
            b.grad = g.clone() if has_grad else None
        mine.step()
        reference.step()
        mine.zero_grad(set_to_none=True)
        reference.zero_grad(set_to_none=True)
        for a, b in zip(ours, theirs):
            assert torch.equal(a, b), f"{name} differs from torch.optim after step {step + 1}"
            assert a.grad is None


def test_defaults_are_torchs() -> None:
    assert torch_defaults("adamw")["weight_decay"] == torch.optim.AdamW(weights(0)).defaults[
        "weight_decay"]
    assert torch_defaults("adam")["betas"] == torch.optim.Adam(weights(0)).defaults["betas"]


def test_zero_grad_in_place() -> None:
    params = weights(0)
    optimizer = make_optimizer("sgd", params, 0.1)
    params[0].grad = torch.ones_like(params[0])
    optimizer.zero_grad(set_to_none=False)
    assert torch.equal(params[0].grad, torch.zeros_like(params[0]))


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; valid: sgd, adam"):
        make_optimizer("rmsprop", weights(0), 0.1)


@pytest.mark.process
def test_training_does_not_import_dynamo() -> None:
    # Importing torch._dynamo costs 1.2-1.7 s of every command's start-up on 2 cores.
    code = ("import sys, torch\n"
            "from pairsearch.evaluation.optimizers import make_optimizer\n"
            "for name in ('sgd', 'adam', 'adagrad', 'adamw'):\n"
            "    p = torch.nn.Parameter(torch.ones(3))\n"
            "    o = make_optimizer(name, [p], 0.1)\n"
            "    (p * p).sum().backward(); o.step(); o.zero_grad()\n"
            "print('torch._dynamo' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
