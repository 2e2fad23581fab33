"""Reading studies back: tables, retests, Markdown reports with plots."""

from __future__ import annotations


import optuna

from pairsearch.search.genetic import (
    GeneticSettings,
    run_genetic,
)
from pairsearch.search.results import best_trials_table, studies_table
from pairsearch.search.retest import retest
from pairsearch.search.strategies import run_grid


def test_study_opens_with_optuna_and_tables(tiny_space, tiny, storage, tmp_path):
    run_grid(tiny_space(), tiny, storage, "g", progress=False)
    study = optuna.load_study(study_name="g", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    frame = study.trials_dataframe()
    assert len(frame) == 4 and "user_attrs_accuracies" in frame.columns
    table = best_trials_table(study, top=2)
    assert len(table) == 2 and list(table["value"]) == sorted(table["value"], reverse=True)
    studies = studies_table(storage)
    assert list(studies["study"]) == ["g"] and studies["complete"][0] == 4


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


def test_report_for_a_genetic_study(tiny_space, tiny, storage, tmp_path):
    from pairsearch.search.markdown import write_report

    space = tiny_space(model=["mlp", "siamese"], lr=[1e-3, 1e-2], optimizer=["adam", "sgd"])
    run_genetic(space, tiny, GeneticSettings(pop=4, gens=3), storage, "ga", progress=False)
    study = optuna.load_study(study_name="ga", storage=storage)
    report = write_report(study, tmp_path / "out")
    text = report.read_text()
    for png in ("accuracy.png", "best_so_far.png", "generations.png", "importance.png"):
        data = (tmp_path / "out" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png
        assert f"({png})" in text
    assert "## Per generation" in text and "model" in text



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
    from pairsearch.search.queries import best_distinct_trials

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
