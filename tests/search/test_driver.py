"""The one study loop: checks before writing, batches of proposals, strategies plugged in."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.search.driver import drive
from pairsearch.search.strategies.base import Strategy
from pairsearch.search.types import Proposal
from pairsearch.search.strategies import run_grid
from pairsearch.search.store.storage import study_names


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
    from pairsearch.search.store.storage import open_storage

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
    """Proposes the same cell twice in one batch, then stops; its observations add an
    attribute to each trial."""

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
        # Observed before the tell: the trial is still running, not yet told.
        study = optuna.load_study(study_name="twice", storage=self.storage)
        assert study.trials[outcome.number].state == TrialState.RUNNING
        return {"observed": outcome.number}


def test_a_strategy_proposes_and_observes_the_driver_runs_and_tells(storage, tiny_space, tiny):
    strategy = _Twice()
    strategy.storage = storage
    space = tiny_space(model=["mlp"], lr=[0.001])
    summary = drive(strategy, space, tiny, storage, "twice", progress=False, batching="on")
    assert [o.number for o in strategy.seen] == [0, 1]
    assert summary.trials == 2
    study = optuna.load_study(study_name="twice", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    # What the strategy returned is stored with the trial's results, in the same tell.
    assert [t.user_attrs["observed"] for t in study.trials] == [0, 1]
    assert all(t.user_attrs["accuracies"] for t in study.trials)
    assert study.metric_names == ["cv_accuracy"]


def test_the_driver_is_the_only_module_that_tells_a_study():
    """Optuna's own loop tells in one function (``_run_trial``); so does pairsearch."""
    import pathlib
    import re

    import pairsearch.search as package

    root = pathlib.Path(package.__file__).parent
    telling = sorted(str(path.relative_to(root)) for path in root.rglob("*.py")
                     if re.search(r"\.tell\(", path.read_text()))
    assert telling == ["driver.py"]
    assert len(re.findall(r"\.tell\(", (root / "driver.py").read_text())) == 1


def test_an_interrupted_batch_is_failed_as_not_a_result(storage, tiny_space, tiny,
                                                        monkeypatch):
    from pairsearch.search.store.queries import crashed, is_result
    from pairsearch.search.trial_evaluator import TrialEvaluator

    def interrupted(self, asked):
        raise KeyboardInterrupt

    monkeypatch.setattr(TrialEvaluator, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        drive(_Twice(), tiny_space(model=["mlp"], lr=[0.001]), tiny, storage, "twice",
              progress=False, batching="on")
    study = optuna.load_study(study_name="twice", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert all(t.user_attrs["interrupted"] and crashed(t) and not is_result(t)
               for t in study.trials)


def test_batching_on_is_refused_for_a_strategy_that_proposes_one_at_a_time(storage,
                                                                           tiny_space, tiny):
    from pairsearch.search.strategies import TpeStrategy

    with pytest.raises(PairsearchError, match="for batching: .*one trial at a time"):
        drive(TpeStrategy(trials=2), tiny_space(), tiny, storage, "t", progress=False,
              batching="on")
    assert study_names(storage) == []
