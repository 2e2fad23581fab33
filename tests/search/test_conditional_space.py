"""Conditional spaces ([families]): the zoo covers every model, parameters exist only where
read, no two cells train the same thing, and every strategy handles them."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.evaluation import ignored_train_options
from pairsearch.models import list_models, model_entry
from pairsearch.search.strategies.genetic import GeneticSettings, run_genetic
from pairsearch.search.space import FAMILY, load_space, space_from_dict
from pairsearch.search.strategies import run_grid, run_tpe


def test_the_zoo_has_a_family_for_every_registered_model():
    space = load_space("zoo")
    models = {str(f.settings["model"]) for f in space.families.values()}
    assert models == set(list_models())


def test_zoo_parameters_exist_only_where_their_family_reads_them():
    space = load_space("zoo")
    for name, family in space.families.items():
        model = str(family.settings["model"])
        active = space.active(name)
        assert active[0] == FAMILY
        for dim in active[1:]:
            if "." in dim:
                owner, option = dim.split(".", 1)
                assert owner == name and option in model_entry(model).options
            else:
                assert dim not in ignored_train_options(model)
        # lambda exists exactly for models with digit heads or a pair auxiliary output
        entry = model_entry(model)
        assert ("lambda" in active) == ((entry.digit_heads or entry.pair_aux)
                                        and entry.pair_loss)


def test_zoo_cells_are_distinct_trainings_and_round_trip_through_json():
    space = load_space("zoo")
    assert space.size > 10_000
    seen = set()
    for number, cell in enumerate(space.cells()):
        if number % 97:  # a sample: every cell would take a minute
            continue
        key = space.config(cell).key()
        assert key not in seen
        seen.add(key)
        assert set(cell) == set(space.active(cell[FAMILY]))
    again = space_from_dict("zoo", json.loads(space.to_json()))
    assert again.to_json() == space.to_json() and again.size == space.size


def test_a_small_conditional_space_enumerates_each_familys_own_product():
    space = load_space("zoo-small")
    cells = list(space.cells())
    assert len(cells) == space.size
    assert len({space.config(c).key() for c in cells}) == len(cells)
    mlp = [c for c in cells if c[FAMILY] == "mlp"]
    assert len(mlp) == 2 * 2 * 2  # lr x shift x hidden: no lambda without digit heads
    assert all("lambda" not in c and "siamese_aux.head" not in c for c in mlp)


@pytest.mark.parametrize("document, message", [
    ({"families": {"a": {"head": ["probs_mlp"]}}}, "family 'a' names no model"),
    ({"families": {"a": {"model": "mlp", "head": ["probs_mlp"]}}},
     "model 'mlp' does not read 'head'"),
    ({"families": {"a": {"model": "mlp", "lambda": 0.5}}}, "model 'mlp' does not read 'lambda'"),
    ({"params": {"lambda": [0.5]}, "families": {"a": {"model": "mlp"}}},
     "no family reads shared dimension 'lambda'"),
    ({"families": {"a": {"model": "mlp", "lr": [0.1, 0.01]}}}, "searched only in"),
    ({"families": {"a": {"model": "vgg"}}}, "unknown model 'vgg'"),
    ({"params": {"model": ["mlp"]}, "families": {"a": {"model": "mlp"}}}, "each family names"),
    ({"families": {"a.b": {"model": "mlp"}}}, "takes no '.'"),
    ({"families": {"a": {"model": "mlp", "hidden": ["0"]}}}, "dimension 'hidden'"),
])
def test_bad_conditional_spaces(document, message):
    with pytest.raises(PairsearchError, match=message):
        space_from_dict("bad", document)


def test_tpe_samples_only_what_each_family_reads_and_starts_from_every_family(storage, tiny):
    space = load_space("zoo-small")
    summary = run_tpe(space, tiny, storage, "zoo", trials=6, progress=False)
    assert summary.trials == 6
    study = optuna.load_study(study_name="zoo", storage=storage)
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    for trial in trials:
        assert set(trial.params) == set(space.active(trial.params[FAMILY]))
    # Warm start: the first trials are every family at its first values, in file order.
    first = sorted(trials, key=lambda t: t.number)[:len(space.families)]
    assert [t.params[FAMILY] for t in first] == list(space.families)
    assert first[0].params == space.cell_at([0] * len(space.params))


def test_random_search_samples_a_conditional_space_too(storage, tiny):
    space = load_space("zoo-small")
    run_tpe(space, tiny, storage, "random", trials=5, progress=False, sampler="random")
    study = optuna.load_study(study_name="random", storage=storage)
    assert study.user_attrs["pairsearch"]["sampler"] == "random"
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        assert set(trial.params) == set(space.active(trial.params[FAMILY]))


def test_a_conditional_grid_claims_each_cell_once(storage, tiny):
    space = space_from_dict("two", {"params": {"lr": [1e-3, 1e-2]}, "families": {
        "a": {"model": "mlp", "hidden": ["8", "16"]}, "b": {"model": "siamese_aux"}}})
    summary = run_grid(space, tiny, storage, "grid", progress=False)
    assert summary.trials == space.size == 6 and summary.evaluated == 6
    assert run_grid(space, tiny, storage, "grid", progress=False).evaluated == 0


def test_the_genetic_algorithm_reads_only_the_genes_of_its_family(storage, tiny):
    space = load_space("zoo-small")
    genes = [1] + [0] * (len(space.params) - 1)
    cell = space.cell_at(genes)
    assert cell[FAMILY] == "r004_siamese_cnn3" and set(cell) == set(space.active(cell[FAMILY]))
    run_genetic(space, tiny, GeneticSettings(pop=4, gens=2), storage, "ga", progress=False)
    study = optuna.load_study(study_name="ga", storage=storage)
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        assert set(trial.params) == set(space.active(trial.params[FAMILY]))


def test_a_pruned_warm_start_cell_is_not_proposed_again(storage, tiny):
    """Each family is tried once at its first values, whatever became of the trial."""
    from pairsearch.search.driver import CLAIM
    from pairsearch.search.types import cell_key
    from pairsearch.search.strategies import TpeStrategy

    space = load_space("zoo-small")
    strategy = TpeStrategy(trials=10)
    strategy.check(space, tiny)
    study = optuna.create_study(storage=storage, study_name="warm", direction="maximize")
    first = strategy.warm_cells[0]
    study.enqueue_trial(first, user_attrs={CLAIM: cell_key(first)})
    trial = study.ask()
    space.suggest(trial)
    study.tell(trial, state=TrialState.PRUNED)
    proposal = strategy.propose(study)[0]
    assert proposal.cell == strategy.warm_cells[1]
    # Trained to the end: its curve reaches the pruner's statistics, the pruner never stops it.
    assert proposal.curve and not proposal.prune


def test_a_retest_of_a_conditional_study_shows_family_options_in_one_column(storage, tiny):
    from pairsearch.search.strategies.retest import retest

    run_tpe(load_space("zoo-small"), tiny, storage, "zoo", trials=4, progress=False)
    table = retest(storage, "zoo", top=2, folds=2, repeats=1, device="cpu", cv_repeats=2)
    assert "options" in table.columns and not [c for c in table.columns if "." in c]
    assert {"family", "p", "tied"} <= set(table.columns)
