"""Retest: the best configurations of a search measured again on the same folds; the one
repeated K-fold CV chooses is scored on the test pairs, once."""

from __future__ import annotations

import optuna
import pytest

from pairsearch.errors import PairsearchError
from pairsearch.search.strategies import run_grid
from pairsearch.search.strategies.retest import retest


def test_retest_chooses_by_cv_and_tests_only_the_chosen(storage, tiny_space, tiny):
    run_grid(tiny_space(), tiny, storage, "g", progress=False)
    table = retest(storage, "g", top=2, folds=2, repeats=2, device="cpu", draws=2)
    assert len(table) == 2 and {"cv2_acc", "test_acc", "chosen"} <= set(table.columns)
    study = optuna.load_study(study_name="g-retest", storage=storage)
    assert len(study.trials) == 2 and study.metric_names == ["cv_accuracy"]
    assert all(len(t.user_attrs["accuracies"]) == 2 for t in study.trials)  # 2 folds each
    chosen = study.user_attrs["chosen"]
    best = max(study.trials, key=lambda t: (t.value, -t.number))
    assert chosen["retest_trial"] == best.number  # the K-fold CV chooses
    assert len(chosen["test_accuracies"]) == 4 and len(chosen["test_draw_means"]) == 2
    assert list(table["chosen"]).count("yes") == 1
    assert table.loc[table["chosen"] != "yes", "test_acc"].isna().all()  # the others: untested
    again = retest(storage, "g", top=2, folds=2, repeats=2, device="cpu", draws=2)
    assert again.equals(table)  # resumed: nothing retrained, the chosen test kept


def test_a_repeated_retest_scores_every_candidate_on_the_same_folds(storage, tiny_space, tiny):
    """cv_repeats x K paired fold scores; the table tests each candidate against the best."""
    run_grid(tiny_space(), tiny, storage, "g", progress=False)
    table = retest(storage, "g", top=3, folds=2, repeats=1, device="cpu", cv_repeats=3)
    study = optuna.load_study(study_name="g-retest", storage=storage)
    assert all(len(t.user_attrs["accuracies"]) == 6 for t in study.trials)
    assert study.user_attrs["pairsearch"]["protocol"]["repeats"] == 3
    assert set(table["folds"]) == {6} and {"diff", "p", "tied"} <= set(table.columns)
    best = table.iloc[0]
    assert best["diff"] == 0 and best["p"] == 1 and best["tied"] == "yes"
    assert (table["diff"] >= 0).all() and table["tied"].isin(["yes", "no"]).all()


def test_a_retest_can_take_the_best_of_each_architecture(storage, tiny_space, tiny):
    """per_architecture=1: the top candidates are the best cell of each model, not the best
    cells overall (which may all be one model's)."""
    from pairsearch.search.store.queries import best_distinct_trials

    space = tiny_space(model=["mlp", "siamese_aux"], lr=[1e-3, 1e-2, 3e-3])
    run_grid(space, tiny, storage, "g", progress=False)
    study = optuna.load_study(study_name="g", storage=storage)
    per_model = best_distinct_trials(study, 2, per_architecture=1)
    assert sorted(t.params["model"] for t in per_model) == ["mlp", "siamese_aux"]
    for trial in per_model:  # each is its model's best
        same = [t.value for t in study.trials if t.params["model"] == trial.params["model"]]
        assert trial.value == max(same)
    table = retest(storage, "g", top=2, folds=2, repeats=1, device="cpu", per_architecture=1)
    assert sorted(table["model"]) == ["mlp", "siamese_aux"]


def test_the_chosen_configuration_is_tested_once(storage, tiny_space, tiny, monkeypatch):
    from pairsearch.search.trial_evaluator import TrialEvaluator

    run_grid(tiny_space(), tiny, storage, "g", progress=False)
    measured = []
    real = TrialEvaluator.measure

    def counting(self, cell):
        measured.append(cell)
        return real(self, cell)

    monkeypatch.setattr(TrialEvaluator, "measure", counting)
    retest(storage, "g", top=2, folds=2, repeats=1, device="cpu")
    retest(storage, "g", top=2, folds=2, repeats=1, device="cpu")
    assert len(measured) == 1  # stored with the retest study, not measured again


def test_bad_retests_are_refused_before_anything_is_written(storage, tiny_space, tiny):
    from pairsearch.search.store.storage import study_names

    with pytest.raises(PairsearchError, match="no study 'nothing'|'nothing'"):
        retest(storage, "nothing", top=2)
    run_grid(tiny_space(), tiny, storage, "g", progress=False)
    for kwargs, message in (({"top": 0}, "for top"), ({"top": 2, "folds": 1}, "for folds"),
                            ({"top": 2, "cv_repeats": 0}, "for cv_repeats"),
                            ({"top": 2, "per_architecture": 0}, "for per_architecture")):
        with pytest.raises(PairsearchError, match=message):
            retest(storage, "g", device="cpu", **kwargs)
    assert study_names(storage) == ["g"]
