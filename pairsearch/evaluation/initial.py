"""Each run's starting weights, built once per process.

A run's initialisation depends only on its model, the model's options, its seed and the
device: a grid's cells that differ in learning rate, optimizer, loss or λ start the same
fold from the same weights. Building the model for every run (module construction and
its initialisers) was a fixed cost of every trial (~1.5 ms a run on 2 CPU cores, the
quick space); here the weights a fresh ``create_model`` gives under the run's seed are
kept in a small least-recently-used cache and stacked straight into the ensemble. The
weights are the same tensors a fresh build gives, so every score is unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

import torch
from torch import nn

from pairsearch.models import create_model

CACHE_SIZE = 48
"""Models kept: a grid's models × folds fit; a small model is ~0.1-1 MB."""

_cache: "OrderedDict[tuple, tuple[nn.Module, dict[str, torch.Tensor]]]" = OrderedDict()


def initial_weights(model: str, options: Mapping[str, Any], seed: int,
                    device: torch.device) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Model ``model`` with ``options`` as ``create_model`` builds it after
    ``torch.manual_seed(seed)``, on ``device``, and its parameters and buffers by name.

    The global random state is left as it was. The module and tensors are shared with later
    calls: read them, copy them (``Ensemble.from_weights`` stacks copies), never train them.

    Raises:
        PairsearchError: On an unknown model or option (``create_model``).
    """
    key = (model, repr(sorted(options.items())), seed, str(device), torch.get_default_dtype())
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        built = create_model(model, **options).to(device)
    tensors = {**dict(built.named_parameters()), **dict(built.named_buffers())}
    _cache[key] = (built, tensors)
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return built, tensors


def clear_cache() -> None:
    """Forget every kept model (tests; a long process that changed models' code)."""
    _cache.clear()
