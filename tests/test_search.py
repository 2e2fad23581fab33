"""The search layer: spaces, grid, TPE, the genetic algorithm, storage, resume, reuse."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.search.genetic import (
    GeneticSettings,
    _toolbox,
    individuality,
    run_genetic,
    select_and_breed,
)
from pairsearch.search.results import best_trials_table, retest, studies_table
from pairsearch.search.runner import SearchSettings, cell_key
from pairsearch.search.space import SearchSpace, load_space, shipped_spaces, space_from_dict
from pairsearch.search.storage import open_storage
from pairsearch.search.strategies import duplicate_of, run_grid, run_tpe
from pairsearch.search.workers import StopRequest, enqueue_owned

optuna.logging.set_verbosity(optuna.logging.WARNING)

TINY = SearchSettings(folds=2, epochs=1, train_pairs=120, test_pairs=60, device="cpu")


@pytest.fixture
def storage(tmp_path):
    return open_storage(f"sqlite:///{tmp_path / 'studies.db'}")


def tiny_space(**params) -> SearchSpace:
    params = params or {"model": ["mlp", "siamese_aux"], "lr": [1e-3, 1e-2]}
    return space_from_dict("tiny", {"params": params})


# ---------------------------------------------------------------- spaces

def test_default_space_is_report_002_table_2():
    space = load_space(None)
    assert space.size == 3600
    assert list(space.params["model"]) == ["naive", "siamese", "twin_aux", "twin", "siamese_aux"]
    assert len(list(space.cells())) == 3600


def test_every_shipped_space_is_valid():
    for name in shipped_spaces():
        assert load_space(name).size >= 1


def test_cells_map_to_configs_dropping_ignored_options():
    space = tiny_space(model=["mlp", "siamese_aux"], **{"lambda": [0.2, 0.9]})
    keys = {space.config(c).key() for c in space.cells()}
    assert len(keys) == 3  # mlp ignores lambda: its two cells are one configuration


@pytest.mark.parametrize("document, message", [
    ({}, r"no \[params\]"),
    ({"params": {}}, "no dimensions"),
    ({"params": {"model": ["vgg"]}}, "unknown model 'vgg'"),
    ({"params": {"model": ["mlp"], "colour": ["red"]}}, "unknown dimension 'colour'"),
    ({"params": {"model": ["mlp"], "lr": [0.1, -1]}}, "dimension 'lr'"),
    ({"params": {"model": ["mlp"], "lr": 0.1}}, "must be a list"),
    ({"params": {"model": ["mlp"], "lr": []}}, "has no values"),
    ({"params": {"model": ["mlp", "mlp"]}}, "repeats a value"),
    ({"params": {"lr": [0.1]}}, "sets no 'model'"),
    ({"params": {"model": ["mlp"]}, "extra": {}}, "unknown table"),
    ({"params": {"model": ["mlp"], "optimizer": ["rmsprop"]}}, "dimension 'optimizer'"),
])
def test_bad_spaces(document, message):
    with pytest.raises(PairsearchError, match=message):
        space_from_dict("bad", document)


# ---------------------------------------------------------------- grid

def test_grid_covers_every_cell_once_and_resumes(storage):
    space = tiny_space()
    summary = run_grid(space, TINY, storage, "g", progress=False)
    assert summary.trials == 4 and summary.evaluated == 4
    study = optuna.load_study(study_name="g", storage=storage)
    cells = sorted(cell_key(t.params) for t in study.trials)
    assert cells == sorted(cell_key(c) for c in space.cells())
    trial = study.trials[0]
    for attr in ("accuracies", "accuracy_std", "f1_mean", "params", "train_seconds", "device",
                 "precision", "data", "protocol", "config_key"):
        assert attr in trial.user_attrs
    assert trial.user_attrs["precision"] in ("fp32", "bf16")
    assert len(trial.user_attrs["accuracies"]) == 2
    # Running it again evaluates nothing.
    again = run_grid(space, TINY, storage, "g", progress=False)
    assert again.evaluated == 0 and again.trials == 4


def test_grid_runs_cells_left_queued(storage):
    # A worker that lost the race for the queue (Optuna's ask found it emptied and sampled
    # a fresh trial) or died between enqueue and ask leaves a WAITING trial behind: the
    # grid must still run that cell and leave nothing queued.
    space = tiny_space()
    stopped = StopRequest()
    stopped.requested = True
    run_grid(space, TINY, storage, "g", progress=False, stop=stopped)  # creates the study
    study = optuna.load_study(study_name="g", storage=storage)
    study.enqueue_trial(next(space.cells()))
    run_grid(space, TINY, storage, "g", progress=False)
    trials = optuna.load_study(study_name="g", storage=storage).trials
    assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    complete = [cell_key(t.params) for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(cell_key(c) for c in space.cells())


def test_grid_resumes_after_interruption(storage, monkeypatch):
    space = tiny_space()
    from pairsearch.search import runner as runner_module

    calls = {"n": 0}
    real = runner_module.evaluate

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_module, "evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_grid(space, TINY, storage, "g", progress=False)
    monkeypatch.setattr(runner_module, "evaluate", real)
    summary = run_grid(space, TINY, storage, "g", progress=False)
    study = optuna.load_study(study_name="g", storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(cell_key(t.params) for t in complete) == sorted(
        cell_key(c) for c in space.cells())
    assert summary.evaluated == 2


def test_equivalent_cells_reuse_results(storage):
    space = tiny_space(model=["mlp"], **{"lambda": [0.2, 0.9]})
    summary = run_grid(space, TINY, storage, "g", progress=False)
    assert summary.evaluated == 1 and summary.reused == 1
    study = optuna.load_study(study_name="g", storage=storage)
    first, second = study.trials
    assert second.user_attrs["reused_from"] == first.number
    assert second.value == first.value


def test_study_with_other_protocol_is_refused_and_untouched(storage):
    space = tiny_space()
    run_grid(space, TINY, storage, "g", progress=False)
    other = SearchSettings(folds=3, epochs=1, train_pairs=120, test_pairs=60, device="cpu")
    with pytest.raises(PairsearchError, match="different protocol"):
        run_grid(space, other, storage, "g", progress=False)
    with pytest.raises(PairsearchError, match="different space"):
        run_grid(tiny_space(model=["mlp"], lr=[0.5]), TINY, storage, "g", progress=False)
    assert len(optuna.load_study(study_name="g", storage=storage).trials) == 4


def test_diverging_cell_is_a_fail_trial(storage):
    space = space_from_dict("div", {"params": {"model": ["mlp"], "lr": [1e30, 1e-3]},
                                    "fixed": {"comparison_loss": "nll", "optimizer": "sgd",
                                              "batch_size": 10}})
    summary = run_grid(space, TINY, storage, "d", progress=False)
    assert summary.failed == 1
    study = optuna.load_study(study_name="d", storage=storage)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and "diverged" in failed[0].user_attrs["fail_reason"]
    assert run_grid(space, TINY, storage, "d", progress=False).evaluated == 0


# ---------------------------------------------------------------- TPE

def test_tpe_stores_trials_and_continues_to_n(storage):
    space = tiny_space(model=["mlp", "siamese"], lr=[1e-3, 1e-2], optimizer=["adam", "sgd"])
    run_tpe(space, TINY, storage, "t", trials=3, progress=False)
    summary = run_tpe(space, TINY, storage, "t", trials=5, progress=False)
    study = optuna.load_study(study_name="t", storage=storage)
    assert summary.trials == 5 and len(study.trials) == 5
    assert all("accuracies" in t.user_attrs for t in study.trials
               if t.state == TrialState.COMPLETE)


# ---------------------------------------------------------------- genetic algorithm

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


def test_selection_keeps_best_accuracy_and_breeds():
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


def test_genetic_run_stores_generations_and_resumes(storage):
    space = tiny_space(model=["mlp", "siamese"], lr=[1e-3, 1e-2], optimizer=["adam", "sgd"])
    state = random.getstate()
    run_genetic(space, TINY, GeneticSettings(pop=4, gens=2), storage, "ga", progress=False)
    assert random.getstate() == state  # no global RNG leakage
    study = optuna.load_study(study_name="ga", storage=storage)
    assert len(study.trials) == 8
    for trial in study.trials:
        for attr in ("generation", "individuality", "fitness", "genes"):
            assert attr in trial.user_attrs
        assert trial.user_attrs["fitness"] == pytest.approx(
            trial.value + 0.75 * trial.user_attrs["individuality"])
    summary = run_genetic(space, TINY, GeneticSettings(pop=4, gens=3), storage, "ga",
                          progress=False)
    study = optuna.load_study(study_name="ga", storage=storage)
    assert len(study.trials) == 12 and summary.trials == 12
    assert {t.user_attrs["generation"] for t in study.trials} == {0, 1, 2}


def test_genetic_is_reproducible(tmp_path):
    space = tiny_space(model=["mlp", "siamese"], lr=[1e-3, 1e-2], optimizer=["adam", "sgd"])
    runs = []
    for name in ("a", "b"):
        storage = open_storage(f"sqlite:///{tmp_path / name}.db")
        run_genetic(space, TINY, GeneticSettings(pop=3, gens=2), storage, "ga", progress=False)
        study = optuna.load_study(study_name="ga", storage=storage)
        runs.append([(t.params, t.value) for t in study.trials])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"pop": 1}, "--pop"), ({"gens": 0}, "--gens"), ({"survivors": 0.0}, "--survivors"),
    ({"survivors": 1.5}, "--survivors"), ({"individuality": "x"}, "--individuality"),
])
def test_bad_genetic_settings(kwargs, message):
    with pytest.raises(PairsearchError, match=message):
        GeneticSettings(**kwargs)


# ---------------------------------------------------------------- reading results

def test_study_opens_with_optuna_and_tables(storage, tmp_path):
    run_grid(tiny_space(), TINY, storage, "g", progress=False)
    study = optuna.load_study(study_name="g", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    frame = study.trials_dataframe()
    assert len(frame) == 4 and "user_attrs_accuracies" in frame.columns
    table = best_trials_table(study, top=2)
    assert len(table) == 2 and list(table["value"]) == sorted(table["value"], reverse=True)
    studies = studies_table(storage)
    assert list(studies["study"]) == ["g"] and studies["complete"][0] == 4


def test_retest_stores_cv_and_test_results(storage):
    run_grid(tiny_space(), TINY, storage, "g", progress=False)
    table = retest(storage, "g", top=2, folds=2, repeats=2, device="cpu")
    assert len(table) == 2 and {"cv2_acc", "test_acc"} <= set(table.columns)
    study = optuna.load_study(study_name="g-retest", storage=storage)
    assert len(study.trials) == 2
    assert all(len(t.user_attrs["test_accuracies"]) == 2 for t in study.trials)


def test_report_for_a_genetic_study(storage, tmp_path):
    from pairsearch.search.report import write_report

    space = tiny_space(model=["mlp", "siamese"], lr=[1e-3, 1e-2], optimizer=["adam", "sgd"])
    run_genetic(space, TINY, GeneticSettings(pop=4, gens=3), storage, "ga", progress=False)
    study = optuna.load_study(study_name="ga", storage=storage)
    report = write_report(study, tmp_path / "out")
    text = report.read_text()
    for png in ("accuracy_boxplots.png", "best_so_far.png", "generations.png", "importance.png"):
        data = (tmp_path / "out" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png
        assert f"({png})" in text
    assert "## Per generation" in text and "model" in text


def test_a_cell_queued_or_being_asked_for_is_seen_by_other_workers(storage):
    """A queued trial, or one ``ask`` is still setting up, has no params yet: the grid's
    duplicate rule must know its cell anyway (else two workers both run the cell)."""
    study = optuna.create_study(storage=storage)
    cell = {"lr": 0.01, "model": "mlp"}
    dists = {"lr": optuna.distributions.CategoricalDistribution([0.01]),
             "model": optuna.distributions.CategoricalDistribution(["mlp"])}
    for _ in range(2):  # two workers queue the same cell
        enqueue_owned(study, cell, {"cell": cell_key(cell)})
    first = study.get_trials(deepcopy=False)[0]
    assert first.params == {}  # queued: params come with ask
    # The first worker's ask has turned its trial RUNNING but not yet set its params.
    study._storage.set_trial_state_values(first._trial_id, TrialState.RUNNING)
    second = study.ask(dists)
    assert second.params == cell
    assert duplicate_of(study, second) == first.number
