"""One strategy registry: the commands and the experiment files choose strategies alike."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.names import STRATEGY_OPTIONS, Attr
from pairsearch.search.strategies import create_strategy, run_strategy


def test_every_strategy_is_made_by_name_with_its_options(tiny_space):
    space = tiny_space()
    made = {kind: create_strategy(kind, space) for kind in STRATEGY_OPTIONS}
    assert {kind: strategy.name for kind, strategy in made.items()} == {
        "grid": "grid", "test": "test", "halving": "halving", "tpe": "tpe",
        "genetic": "genetic"}
    tpe = create_strategy("tpe", space, {"trials": 7, "sampler": "random", "pruner": None})
    assert tpe.trials == 7 and tpe.sampler_name == "random" and tpe.pruner_name == "median"


@pytest.mark.parametrize("kind, options, message", [
    ("walk", {}, r"bad value 'walk' for strategy: valid: grid, test, halving, tpe, genetic"),
    ("tpe", {"pop": 4}, r"strategy 'tpe' does not take option 'pop' \(its options: trials,"),
    ("grid", {"eta": 3}, r"strategy 'grid' does not take option 'eta' \(its options: curves\)"),
    ("tpe", {"sampler": "cmaes"}, r"bad value 'cmaes' for sampler"),
])
def test_an_unknown_strategy_or_option_is_refused_never_dropped(tiny_space, kind, options,
                                                                message):
    with pytest.raises(PairsearchError, match=message):
        create_strategy(kind, tiny_space(), options)


def test_run_strategy_drives_the_named_strategy(storage, tiny_space, tiny):
    from dataclasses import replace

    summary = run_strategy("halving", tiny_space(), replace(tiny, epochs=2), storage, "h",
                           {"min_epochs": 1, "eta": 2}, progress=False)
    assert summary.best_value is not None
    study = optuna.load_study(study_name="h", storage=storage)
    assert {t.user_attrs[Attr.RUNG] for t in study.trials} == {0, 1}


def test_every_strategy_runs_from_an_experiment_file(storage):
    """grid, test, halving, tpe, genetic and retest stages, each with its own options."""
    from pairsearch.experiments import RunOptions, experiment_from_dict, run_experiment

    space = {"params": {"model": ["mlp", "siamese"], "lr": [1e-3, 1e-2]}}
    protocol = {"folds": 2, "epochs": 2, "train_pairs": 120, "test_pairs": 60}
    experiment = experiment_from_dict("every", {"defaults": protocol, "stages": [
        {"name": "grid", "kind": "grid", **space},
        {"name": "halving", "kind": "halving", "min_epochs": 1, "eta": 2, **space},
        {"name": "tpe", "kind": "tpe", "trials": 3, "sampler": "random", **space},
        {"name": "ga", "kind": "genetic", "pop": 2, "gens": 2, **space},
        {"name": "again", "kind": "retest", "of": "grid", "top": 2, "folds": 2, "repeats": 1},
        {"name": "test", "kind": "test", "best_of": "halving", "repeats": 1}]})
    studies = run_experiment(experiment, storage, RunOptions(device="cpu", progress=False),
                             report=lambda line: None)
    assert studies == ["every-grid", "every-halving", "every-tpe", "every-ga",
                       "every-grid-retest", "every-test"]
    kinds = {}
    for name in studies:
        study = optuna.load_study(study_name=name, storage=storage)
        kinds[name] = study.user_attrs["pairsearch"]["strategy"]
        assert study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), name
    assert kinds == {"every-grid": "grid", "every-halving": "halving", "every-tpe": "tpe",
                     "every-ga": "genetic", "every-grid-retest": "retest",
                     "every-test": "test"}
    tpe = optuna.load_study(study_name="every-tpe", storage=storage)
    assert len(tpe.trials) == 3  # its own option, not a default


def test_an_experiment_stage_with_another_strategys_option_is_refused():
    from pairsearch.experiments import experiment_from_dict

    with pytest.raises(PairsearchError, match="a tpe stage does not take 'pop'"):
        experiment_from_dict("x", {"stages": [{"name": "a", "kind": "tpe", "pop": 4,
                                                "params": {"model": ["mlp"]}}]})
