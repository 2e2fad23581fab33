"""Optimizers by name, with torch's defaults for everything but the learning rate."""

from __future__ import annotations

from typing import Iterable, Literal

import torch

OptimizerName = Literal["sgd", "adam", "adagrad", "adamw"]

_OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adagrad": torch.optim.Adagrad,
    "adamw": torch.optim.AdamW,
}


def make_optimizer(name: str, parameters: Iterable[torch.nn.Parameter],
                   lr: float) -> torch.optim.Optimizer:
    """A fresh optimizer ``name`` over ``parameters`` with learning rate ``lr``."""
    return _OPTIMIZERS[name](parameters, lr=lr)
