"""Reading studies back: tables and Markdown reports with plots."""

from __future__ import annotations


import optuna

from pairsearch.search.strategies.genetic import (
    GeneticSettings,
    run_genetic,
)
from pairsearch.search.store.tables import best_trials_table, studies_table
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
