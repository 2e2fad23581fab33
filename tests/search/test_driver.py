"""The one study loop: checks before writing, batches of proposals, strategies plugged in."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.search.driver import Strategy, drive
from pairsearch.search.runner import Proposal
from pairsearch.search.strategies import run_grid
from pairsearch.search.storage import study_names


def test_settings_that_cannot_run_are_refused_before_anything_is_written(storage, tiny_space,
                                                                         tiny):
    from dataclasses import replace

    for bad, message in ((replace(tiny, folds=1000), "cannot make 1000 stratified folds"),
                         (replace(tiny, train_pairs=5000), "cannot draw 5000 train pairs"),
                         (replace(tiny, data="nowhere"), "unknown data source")):
        with pytest.raises(PairsearchError, match=message):
            run_grid(tiny_space(), bad, storage, "g", progress=False)
    assert study_names(storage) == []


def test_batched_configurations_store_what_one_at_a_time_stores(tmp_path, tiny_space, tiny):
    """Cells of one architecture train together with batching on; every trial's scores
    equal those of the same grid run one configuration at a time."""
    from pairsearch.search.storage import open_storage

    space = tiny_space(model=["siamese_aux"], lr=[1e-3, 1e-2], optimizer=["adam", "sgd"],
                       **{"lambda": [0.5, 1.0]})
    stored = {}
    for batching in ("off", "on"):
        storage = open_storage(f"sqlite:///{tmp_path / batching}.db")
        summary = run_grid(space, tiny, storage, "g", progress=False, batching=batching)
        assert summary.evaluated == 8
        study = optuna.load_study(study_name="g", storage=storage)
        stored[batching] = {str(sorted(t.params.items())): (t.value, t.user_attrs["accuracies"])
                            for t in study.trials}
    assert stored["on"] == stored["off"]


class _Twice(Strategy):
    """Proposes the same cell twice in one batch, then stops."""

    name = "twice"

    def __init__(self) -> None:
        self.rounds = 0
        self.seen = []

    def propose(self, study):
        self.rounds += 1
        if self.rounds > 1:
            return None
        return [Proposal({"model": "mlp", "lr": 0.001}), Proposal({"model": "mlp", "lr": 0.001})]

    def observe(self, proposal, outcome):
        self.seen.append(outcome)


def test_a_strategy_only_proposes_the_driver_does_the_rest(storage, tiny_space, tiny):
    strategy = _Twice()
    space = tiny_space(model=["mlp"], lr=[0.001])
    summary = drive(strategy, space, tiny, storage, "twice", progress=False, batching="on")
    assert [o.trained for o in strategy.seen] == [True, False]  # trained once, then reused
    assert summary.evaluated == 1 and summary.reused == 1 and summary.trials == 2
    study = optuna.load_study(study_name="twice", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert study.trials[1].user_attrs["reused_from"] == 0
    assert study.metric_names == ["cv_accuracy"]
