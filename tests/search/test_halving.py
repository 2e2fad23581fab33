"""Successive halving of the grid: rungs, budgets, survivors, exactness, resume."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.search.store.queries import full_budget_trials, rung_summary
from pairsearch.search.strategies.halving import run_halving, rung_budgets
from pairsearch.search.strategies import run_grid
from pairsearch.search.workers import StopRequest


def test_rung_budgets():
    assert rung_budgets(25, 1, 3) == [1, 3, 9, 25]
    assert rung_budgets(6, 2, 3) == [2, 6]
    assert rung_budgets(4, 4, 2) == [4]
    with pytest.raises(PairsearchError, match="for min_epochs"):
        rung_budgets(3, 5, 3)
    with pytest.raises(PairsearchError, match="for eta"):
        rung_budgets(9, 1, 1)


def _space(tiny_space):
    # 6 distinct configurations; the 'lambda' of mlp cells is ignored: 2 x 2 cells are 1 each.
    return tiny_space(model=["mlp", "siamese_aux"], lr=[1e-3, 1e-2, 1e-1],
                      **{"lambda": [0.5, 1.0]})


def test_halving_trains_rungs_and_reports_a_full_budget_cell(storage, tiny_space, tiny):
    from dataclasses import replace

    settings = replace(tiny, epochs=4)
    summary = run_halving(_space(tiny_space), settings, storage, "h", min_epochs=1, eta=2,
                          progress=False)
    study = optuna.load_study(study_name="h", storage=storage)
    rungs = rung_summary(study)
    # 9 distinct configurations (mlp ignores lambda): 9 at 1 epoch, 5 at 2, 3 at 4.
    assert [(r["budget"], r["configurations"]) for r in rungs] == [(1, 9), (2, 5), (4, 3)]
    full = full_budget_trials(study)
    assert len(full) == 3 and all(t.user_attrs["budget"] == 4 for t in full)
    low = [t for t in study.trials if t.user_attrs.get("rung", 2) < 2]
    assert all(t.state == TrialState.PRUNED for t in low)
    # Learning curves for the dashboard: one intermediate value per epoch of the budget.
    assert all(len(t.intermediate_values) == t.user_attrs["budget"] for t in low)
    assert summary.best_value == study.best_value == max(t.value for t in full)
    # Survivors are the best of the last rung.
    second = sorted((t for t in study.trials if t.user_attrs.get("rung") == 1),
                    key=lambda t: -sum(t.user_attrs["accuracies"]))
    assert {str(t.params) for t in full} <= {str(t.params) for t in second[:3]}


def test_a_survivors_full_budget_result_is_the_exhaustive_grids(storage, tiny_space, tiny):
    from dataclasses import replace

    settings = replace(tiny, epochs=4)
    run_halving(_space(tiny_space), settings, storage, "h", min_epochs=1, eta=2, progress=False)
    run_grid(_space(tiny_space), settings, storage, "g", progress=False)
    grid = {t.user_attrs["config_key"]: t.value
            for t in optuna.load_study(study_name="g", storage=storage).trials
            if t.state == TrialState.COMPLETE}
    for trial in full_budget_trials(optuna.load_study(study_name="h", storage=storage)):
        assert trial.value == grid[trial.user_attrs["config_key"]]


def test_a_stopped_halving_resumes_to_the_same_result(tmp_path, tiny_space, tiny, monkeypatch):
    from dataclasses import replace

    from pairsearch.search.store.storage import open_storage

    settings = replace(tiny, epochs=4)
    whole = open_storage(f"sqlite:///{tmp_path / 'whole.db'}")
    run_halving(_space(tiny_space), settings, whole, "h", 1, 2, progress=False)
    parts = open_storage(f"sqlite:///{tmp_path / 'parts.db'}")

    from pairsearch.search.trial_evaluator import TrialEvaluator

    real = TrialEvaluator.evaluate
    for _ in range(3):
        # A stop requested once 4 more trials are evaluated (a Ctrl-C between trials).
        stop, done = StopRequest(), []

        def counting(self, asked, stop=stop, done=done):
            verdicts = real(self, asked)
            done.extend(asked)
            stop.requested = len(done) >= 4
            return verdicts

        monkeypatch.setattr(TrialEvaluator, "evaluate", counting)
        summary = run_halving(_space(tiny_space), settings, parts, "h", 1, 2, progress=False,
                              stop=stop)
        assert summary.stopped and summary.evaluated + summary.reused == 4
    monkeypatch.setattr(TrialEvaluator, "evaluate", real)
    run_halving(_space(tiny_space), settings, parts, "h", 1, 2, progress=False)
    results = [sorted((str(t.params), t.value) for t in full_budget_trials(
        optuna.load_study(study_name="h", storage=s))) for s in (whole, parts)]
    assert results[0] == results[1]


def test_halving_refuses_a_space_that_varies_the_epochs(storage, tiny_space, tiny):
    with pytest.raises(PairsearchError, match="'epochs' dimension"):
        run_halving(tiny_space(model=["mlp"], epochs=[1, 2]), tiny, storage, "h", progress=False)
