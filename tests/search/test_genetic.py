"""Report 002's genetic algorithm: individuality, selection, generations, resume."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.search.strategies.genetic import (
    GeneticSettings,
    _toolbox,
    individuality,
    run_genetic,
    select_and_breed,
)
from pairsearch.search.store.storage import open_storage


def test_individuality_formula_on_hand_made_population():
    population = [[0, 0], [0, 1], [1, 2], [2, 2]]
    # individual 0: others differing on p1 = 4-2 = 2, on p2 = 4-1 = 3 -> 1/(1/2+1/3) = 1.2
    scores = individuality(population)
    assert scores[0] == pytest.approx(1.2)
    assert scores[2] == pytest.approx(1 / (1 / 3 + 1 / 2))
    # a value shared by the whole population gives individuality 0
    assert individuality([[0, 1], [0, 2], [0, 3]]) == [0.0, 0.0, 0.0]
    normalised = individuality([[0, 0], [1, 1], [2, 2]], normalised=True)
    assert normalised == pytest.approx([1.0, 1.0, 1.0])
    # a dimension of the space with a single value is no measure of diversity: left out
    assert individuality([[0, 1], [0, 2], [0, 3]], sizes=[1, 4]) == pytest.approx([2, 2, 2])


def test_selection_keeps_best_accuracy_and_breeds(tiny_space):
    space = tiny_space(model=["mlp", "siamese", "cnn"], lr=[1e-3, 1e-2, 1e-1])
    settings = GeneticSettings(pop=5, gens=2, survivors=0.4, diversity=10.0)
    toolbox = _toolbox(space, settings)
    from deap import creator

    population = [creator.PairsearchIndividual(g) for g in
                  ([0, 0], [1, 1], [2, 2], [0, 1], [1, 0])]
    accuracies = [0.9, 0.5, 0.5, 0.5, 0.5]
    fitnesses = [0.9, 3.0, 2.5, 1.0, 1.0]  # the bonus outranks the most accurate one
    new = select_and_breed(population, accuracies, fitnesses, settings, toolbox,
                           random.Random(0))
    assert len(new) == 5
    assert [0, 0] in [list(i) for i in new[:2]]  # best by accuracy survives anyway
    assert [1, 1] in [list(i) for i in new[:2]]  # best by fitness survives
    for child in new[2:]:
        assert all(0 <= g <= 2 for g in child)


def test_genetic_run_stores_generations_and_resumes(tiny_space, tiny, storage):
    space = tiny_space(model=["mlp", "siamese"], lr=[1e-3, 1e-2], optimizer=["adam", "sgd"])
    state = random.getstate()
    run_genetic(space, tiny, GeneticSettings(pop=4, gens=2), storage, "ga", progress=False)
    assert random.getstate() == state  # no global RNG leakage
    study = optuna.load_study(study_name="ga", storage=storage)
    assert len(study.trials) == 8
    for trial in study.trials:
        for attr in ("generation", "individuality", "fitness", "genes"):
            assert attr in trial.user_attrs
        assert trial.user_attrs["fitness"] == pytest.approx(
            trial.value + 0.75 * trial.user_attrs["individuality"])
    summary = run_genetic(space, tiny, GeneticSettings(pop=4, gens=3), storage, "ga",
                          progress=False)
    study = optuna.load_study(study_name="ga", storage=storage)
    assert len(study.trials) == 12 and summary.trials == 12
    assert {t.user_attrs["generation"] for t in study.trials} == {0, 1, 2}


def test_genetic_is_reproducible(tiny_space, tiny, tmp_path):
    space = tiny_space(model=["mlp", "siamese"], lr=[1e-3, 1e-2], optimizer=["adam", "sgd"])
    runs = []
    for name in ("a", "b"):
        storage = open_storage(f"sqlite:///{tmp_path / name}.db")
        run_genetic(space, tiny, GeneticSettings(pop=3, gens=2), storage, "ga", progress=False)
        study = optuna.load_study(study_name="ga", storage=storage)
        runs.append([(t.params, t.value) for t in study.trials])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"pop": 1}, "for pop: needs at least 2"), ({"gens": 0}, "for gens"),
    ({"survivors": 0.0}, "for survivors"), ({"survivors": 1.5}, "for survivors"),
    ({"individuality": "x"}, "for individuality"), ({"eta": 1}, "for eta"),
])
def test_bad_genetic_settings(kwargs, message):
    with pytest.raises(PairsearchError, match=message):
        GeneticSettings(**kwargs)


def test_genetic_with_halving_ranks_a_stopped_individual_by_what_it_reached(storage, tiny_space,
                                                                           tiny):
    from dataclasses import replace

    space = tiny_space(model=["mlp", "siamese"], lr=[1e-4, 1e-3, 1e-2, 1e-1],
                       optimizer=["adam", "sgd"])
    genetic = GeneticSettings(pop=6, gens=3, halving=True, min_epochs=1, eta=2)
    run_genetic(space, replace(tiny, epochs=4), genetic, storage, "ga", progress=False)
    study = optuna.load_study(study_name="ga", storage=storage)
    assert len(study.trials) == 18
    assert study.user_attrs["pairsearch"]["protocol"]["halving"] == {"min_epochs": 1, "eta": 2}
    assert any(t.state == TrialState.PRUNED for t in study.trials)
    for trial in study.trials:
        if trial.state == TrialState.PRUNED:  # fitness from the accuracy it had reached
            reached = trial.intermediate_values[max(trial.intermediate_values)]
            assert trial.user_attrs["fitness"] == pytest.approx(
                reached + 0.75 * trial.user_attrs["individuality"])


def test_niche_counts_and_the_fitness_variants(storage, tiny_space, tiny):
    from pairsearch.search.strategies.genetic import niche_counts

    # 4 varying dimensions: sigma 2; distances 0, 1, 4 -> shares 1, 0.5, 0.
    population = [[0, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]]
    assert niche_counts(population, [2, 2, 2, 2]) == pytest.approx([1.5, 1.5, 1.0])
    space = tiny_space(model=["mlp", "siamese"], lr=[1e-3, 1e-2], optimizer=["adam", "sgd"])
    for fitness in ("decaying", "sharing"):
        run_genetic(space, tiny, GeneticSettings(pop=4, gens=2, fitness=fitness), storage,
                    f"ga-{fitness}", progress=False)
        study = optuna.load_study(study_name=f"ga-{fitness}", storage=storage)
        for trial in study.trials:
            accuracy, bonus = trial.value, trial.user_attrs["individuality"]
            if fitness == "decaying":  # weight 0.75 in generation 0, 0.375 in generation 1
                weight = 0.75 * (1 - trial.user_attrs["generation"] / 2)
                assert trial.user_attrs["fitness"] == pytest.approx(accuracy + weight * bonus)
            else:  # no bonus; the accuracy divided by the niche count in its generation
                generation = sorted((t for t in study.trials if t.user_attrs["generation"]
                                     == trial.user_attrs["generation"]),
                                    key=lambda t: t.user_attrs["individual"])
                niches = niche_counts([t.user_attrs["genes"] for t in generation], [2, 2, 2])
                niche = niches[trial.user_attrs["individual"]]
                assert trial.user_attrs["fitness"] == pytest.approx(accuracy / niche)
