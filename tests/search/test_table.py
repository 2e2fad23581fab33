"""Tabular benchmarks: a grid exported, then searches answered from it without training."""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest

from pairsearch.errors import PairsearchError
from pairsearch.search.store.queries import full_budget_trials
from pairsearch.search.strategies import run_genetic, run_grid, run_halving, run_tpe
from pairsearch.search.strategies.genetic import GeneticSettings
from pairsearch.search.table import Table, export_table
from pairsearch.search.trial_evaluator import TrialEvaluator


def _space(tiny_space):
    return tiny_space(model=["mlp", "siamese_aux"], lr=[1e-3, 1e-2, 1e-1],
                      **{"lambda": [0.5, 1.0]})


@pytest.fixture
def table(tmp_path, storage, tiny_space, tiny):
    settings = replace(tiny, epochs=4)
    run_grid(_space(tiny_space), settings, storage, "g", progress=False, curves=True)
    path = tmp_path / "table.json.gz"
    Table.save(export_table(optuna.load_study(study_name="g", storage=storage)), path)
    return path, replace(settings, table=str(path))


def _values(storage, name):
    study = optuna.load_study(study_name=name, storage=storage)
    return {t.user_attrs["config_key"]: (t.value, tuple(t.user_attrs["accuracies"]))
            for t in full_budget_trials(study)}


def test_the_table_answers_what_the_grid_stored(table, storage, tiny_space, monkeypatch):
    path, settings = table
    loaded = Table.load(path)
    assert loaded.curves and loaded.epochs == 4 and len(loaded.entries) == 9  # mlp ignores λ
    monkeypatch.setattr("pairsearch.search.trial_evaluator.evaluate",
                        lambda *a, **k: pytest.fail("a replay must not train"))
    run_grid(_space(tiny_space), settings, storage, "replay", progress=False)
    assert _values(storage, "replay") == _values(storage, "g")


def test_halving_replayed_sees_the_grids_curve_at_each_rung(table, storage, tiny_space):
    path, settings = table
    run_halving(_space(tiny_space), settings, storage, "h", min_epochs=1, eta=2, progress=False)
    grid = {t.user_attrs["config_key"]: t for t in
            optuna.load_study(study_name="g", storage=storage).trials if "reused_from" not in
            t.user_attrs}
    evaluator = TrialEvaluator(_space(tiny_space), settings)
    for trial in optuna.load_study(study_name="h", storage=storage).trials:
        full = grid[evaluator.config(trial.params).key()]
        budget = trial.user_attrs["budget"]
        expected = full.value if budget == 4 else full.intermediate_values[budget - 1]
        assert trial.value == pytest.approx(expected, abs=1e-12)


def test_tpe_with_a_pruner_and_the_ga_replay(table, storage, tiny_space):
    path, settings = table
    run_tpe(_space(tiny_space), replace(settings, strategy_seed=1), storage, "t", 12,
            progress=False, pruner="median")
    study = optuna.load_study(study_name="t", storage=storage)
    assert len([t for t in study.trials if t.state.is_finished()]) == 12
    run_genetic(_space(tiny_space), settings, GeneticSettings(pop=4, gens=2, halving=True),
                storage, "ga", progress=False)
    grid = _values(storage, "g")
    for name in ("t", "ga"):
        for key, value in _values(storage, name).items():
            assert value == grid[key]


def test_bad_tables_and_mismatches_are_refused(tmp_path, storage, tiny_space, tiny, table):
    path, settings = table
    with pytest.raises(PairsearchError, match="made with 2"):
        TrialEvaluator(_space(tiny_space), replace(settings, folds=3))
    with pytest.raises(PairsearchError, match="holds 4"):
        run_grid(_space(tiny_space), replace(settings, epochs=5), storage, "x", progress=False)
    with pytest.raises(PairsearchError, match="not in the table"):
        run_grid(tiny_space(model=["siamese"]), settings, storage, "y", progress=False)
    with pytest.raises(PairsearchError, match="no table file"):
        Table.load(tmp_path / "missing.gz")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(PairsearchError, match="not a pairsearch table"):
        Table.load(tmp_path / "bad.json")
    # A grid without curves answers full budgets only.
    run_grid(_space(tiny_space), replace(tiny, epochs=4), storage, "plain", progress=False)
    plain = tmp_path / "plain.json"
    Table.save(export_table(optuna.load_study(study_name="plain", storage=storage)), plain)
    assert not Table.load(plain).curves
    with pytest.raises(PairsearchError, match="no learning curves"):
        run_halving(_space(tiny_space), replace(tiny, epochs=4, table=str(plain)), storage,
                    "hp", progress=False)


def test_only_a_complete_grid_exports(storage, tiny_space, tiny, interrupt_evaluation):
    run_tpe(_space(tiny_space), tiny, storage, "t", 2, progress=False)
    with pytest.raises(PairsearchError, match="a tpe study"):
        export_table(optuna.load_study(study_name="t", storage=storage))
    interrupt_evaluation(3)
    with pytest.raises(KeyboardInterrupt):
        run_grid(_space(tiny_space), tiny, storage, "part", progress=False)
    with pytest.raises(PairsearchError, match="finish the grid first"):
        export_table(optuna.load_study(study_name="part", storage=storage))


def test_a_diverged_configuration_trains_until_the_epoch_it_diverged_in():
    from pairsearch.evaluation import Config, Protocol
    from pairsearch.search.table import FORMAT

    config = Config.from_settings("mlp", {"epochs": "4"})
    table = Table({"format": FORMAT, "study": "g", "space": {"params": {}}, "epochs": 4,
                   "protocol": {"folds": 2},
                   "configurations": {config.key(): {
                       "params": {"model": "mlp"}, "accuracies": [], "curve": [0.5, 0.6],
                       "seconds": 0.0, "failed": "run 1 diverged: loss became nan at epoch 3"}}})
    protocol = Protocol("cv", folds=2)

    def at(epochs):
        return replace(config, train=replace(config.train, epochs=epochs))

    assert table.evaluate(at(2), protocol, 0).accuracies == [0.6, 0.6]  # before it diverged
    assert "diverged" in table.evaluate(at(4), protocol, 0).failed
    seen = []
    stopped = table.evaluate(at(4), protocol, 0, lambda e, v: seen.append(v) or e == 0)
    assert stopped.stopped_at == 0 and stopped.failed is None and seen == [0.5]
    reported = []
    assert table.evaluate(at(4), protocol, 0, lambda e, v: reported.append(v)).failed
    assert reported == [0.5, 0.6]  # a pruner saw the epochs before the failure


@pytest.mark.parametrize("name, epochs, train_pairs", [
    ("report002-400pairs-6epochs.json.gz", 6, 400),  # the cheap protocol
    ("report002-full.json.gz", 25, 1000),  # report 002's own protocol
])
def test_the_shipped_tables_are_report_002s_space(name, epochs, train_pairs):
    import json
    from pathlib import Path

    from pairsearch.search.space import load_space

    table = Table.load(Path(__file__).resolve().parents[2] / "benchmarks" / "tables" / name)
    assert table.curves and table.epochs == epochs and len(table.entries) == 2800
    assert table.protocol["train_pairs"] == train_pairs and table.protocol["folds"] == 3
    assert json.loads(load_space("report002").to_json()) == table.space
