"""Fixtures of the search tests: a temporary storage, small spaces, a tiny protocol."""

from __future__ import annotations

from typing import Callable

import optuna
import pytest

from pairsearch.search.types import SearchSettings
from pairsearch.search.space import SearchSpace, space_from_dict
from pairsearch.search.store.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def storage(tmp_path):
    return open_storage(f"sqlite:///{tmp_path / 'studies.db'}")


@pytest.fixture
def tiny() -> SearchSettings:
    """2-fold CV, 1 epoch, 120 training pairs: seconds per study."""
    return SearchSettings(folds=2, epochs=1, train_pairs=120, test_pairs=60, device="cpu")


@pytest.fixture
def tiny_space() -> Callable[..., SearchSpace]:
    """A factory of small spaces: ``tiny_space(model=[...], lr=[...])``."""
    def make(**params) -> SearchSpace:
        params = params or {"model": ["mlp", "siamese_aux"], "lr": [1e-3, 1e-2]}
        return space_from_dict("tiny", {"params": params})
    return make
