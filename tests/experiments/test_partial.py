"""A table read while a grid is still under way says so."""

from __future__ import annotations

import optuna
import pytest

from pairsearch.experiments.tables import unfinished_cells
from pairsearch.search.types import SearchSettings
from pairsearch.search.space import space_from_dict
from pairsearch.search.store.storage import open_storage
from pairsearch.search.strategies import run_grid


def test_a_grid_under_way_counts_its_cells(tmp_path, interrupt_evaluation):
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    space = space_from_dict("tiny", {"params": {"model": ["mlp", "siamese"],
                                                "lr": [1e-3, 1e-2]}})
    settings = SearchSettings(folds=2, epochs=1, train_pairs=120, test_pairs=60, device="cpu")
    restore = interrupt_evaluation(3)
    with pytest.raises(KeyboardInterrupt):
        run_grid(space, settings, storage, "g", progress=False)
    study = optuna.load_study(study_name="g", storage=storage)
    assert unfinished_cells(study) == (2, 4)
    restore()
    run_grid(space, settings, storage, "g", progress=False)
    assert unfinished_cells(optuna.load_study(study_name="g", storage=storage)) is None
