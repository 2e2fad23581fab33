"""Grid and TPE through the driver: every cell once, resume, reuse, claims, failures."""

from __future__ import annotations


import os
import subprocess

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.search.types import SearchSettings, cell_key, distributions
from pairsearch.search.space import space_from_dict
from pairsearch.search.store.storage import trial_id
from pairsearch.search.strategies import duplicate_of, run_grid, run_tpe
from pairsearch.search.workers import StopRequest, enqueue_owned


def test_grid_covers_every_cell_once_and_resumes(tiny_space, tiny, storage):
    space = tiny_space()
    summary = run_grid(space, tiny, storage, "g", progress=False)
    assert summary.trials == 4 and summary.evaluated == 4
    study = optuna.load_study(study_name="g", storage=storage)
    cells = sorted(cell_key(t.params) for t in study.trials)
    assert cells == sorted(cell_key(c) for c in space.cells())
    trial = study.trials[0]
    for attr in ("accuracies", "accuracy_std", "f1_mean", "params", "train_seconds", "device",
                 "precision", "cpu_threads", "data", "protocol", "config_key"):
        assert attr in trial.user_attrs
    assert trial.user_attrs["precision"] in ("fp32", "bf16")
    assert len(trial.user_attrs["accuracies"]) == 2
    # Running it again evaluates nothing.
    again = run_grid(space, tiny, storage, "g", progress=False)
    assert again.evaluated == 0 and again.trials == 4


def test_grid_runs_cells_left_queued(tiny_space, tiny, storage):
    # A worker that lost the race for the queue (Optuna's ask found it emptied and sampled
    # a fresh trial) or died between enqueue and ask leaves a WAITING trial behind: the
    # grid must still run that cell and leave nothing queued.
    space = tiny_space()
    stopped = StopRequest()
    stopped.requested = True
    run_grid(space, tiny, storage, "g", progress=False, stop=stopped)  # creates the study
    study = optuna.load_study(study_name="g", storage=storage)
    study.enqueue_trial(next(space.cells()))
    run_grid(space, tiny, storage, "g", progress=False)
    trials = optuna.load_study(study_name="g", storage=storage).trials
    assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    complete = [cell_key(t.params) for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(cell_key(c) for c in space.cells())


def test_grid_resumes_after_interruption(tiny_space, tiny, storage, interrupt_evaluation):
    space = tiny_space()
    restore = interrupt_evaluation(3)
    with pytest.raises(KeyboardInterrupt):
        run_grid(space, tiny, storage, "g", progress=False)
    restore()
    summary = run_grid(space, tiny, storage, "g", progress=False)
    study = optuna.load_study(study_name="g", storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(cell_key(t.params) for t in complete) == sorted(
        cell_key(c) for c in space.cells())
    assert summary.evaluated == 2


def test_equivalent_cells_reuse_results(tiny_space, tiny, storage):
    space = tiny_space(model=["mlp"], **{"lambda": [0.2, 0.9]})
    summary = run_grid(space, tiny, storage, "g", progress=False)
    assert summary.evaluated == 1 and summary.reused == 1
    study = optuna.load_study(study_name="g", storage=storage)
    first, second = study.trials
    assert second.user_attrs["reused_from"] == first.number
    assert second.value == first.value


def test_study_with_other_protocol_is_refused_and_untouched(tiny_space, tiny, storage):
    space = tiny_space()
    run_grid(space, tiny, storage, "g", progress=False)
    other = SearchSettings(folds=3, epochs=1, train_pairs=120, test_pairs=60, device="cpu")
    with pytest.raises(PairsearchError, match="different protocol"):
        run_grid(space, other, storage, "g", progress=False)
    with pytest.raises(PairsearchError, match="different space"):
        run_grid(tiny_space(model=["mlp"], lr=[0.5]), tiny, storage, "g", progress=False)
    assert len(optuna.load_study(study_name="g", storage=storage).trials) == 4


def test_diverging_cell_is_a_fail_trial(tiny, storage):
    space = space_from_dict("div", {"params": {"model": ["mlp"], "lr": [1e30, 1e-3]},
                                    "fixed": {"comparison_loss": "nll", "optimizer": "sgd",
                                              "batch_size": 10}})
    summary = run_grid(space, tiny, storage, "d", progress=False)
    assert summary.failed == 1
    study = optuna.load_study(study_name="d", storage=storage)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and "diverged" in failed[0].user_attrs["fail_reason"]
    assert run_grid(space, tiny, storage, "d", progress=False).evaluated == 0


def test_tpe_stores_trials_and_continues_to_n(tiny_space, tiny, storage):
    space = tiny_space(model=["mlp", "siamese"], lr=[1e-3, 1e-2], optimizer=["adam", "sgd"])
    run_tpe(space, tiny, storage, "t", trials=3, progress=False)
    summary = run_tpe(space, tiny, storage, "t", trials=5, progress=False)
    study = optuna.load_study(study_name="t", storage=storage)
    assert summary.trials == 5 and len(study.trials) == 5
    assert all("accuracies" in t.user_attrs for t in study.trials
               if t.state == TrialState.COMPLETE)


def test_a_resumed_tpe_does_not_replay_its_first_draws(tiny_space, tiny, storage):
    """Resumed with the same strategy seed, the random start-up draws would be the ones the
    first run made: cells already stored, reused, so the new trials would learn nothing."""
    space = tiny_space(model=["mlp", "siamese"], lr=[1e-3, 3e-3, 1e-2, 3e-2],
                       optimizer=["adam", "sgd"])
    run_tpe(space, tiny, storage, "t", trials=3, progress=False, pruner="none")
    first = [t.params for t in optuna.load_study(study_name="t", storage=storage).trials]
    summary = run_tpe(space, tiny, storage, "t", trials=6, progress=False, pruner="none")
    assert summary.trials == 6
    resumed = [t.params for t in optuna.load_study(study_name="t", storage=storage).trials][3:]
    assert resumed != first  # a replay would propose the same three cells in order
    assert summary.evaluated > 0  # something new was trained


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
    storage.set_trial_state_values(trial_id(storage, study, first.number), TrialState.RUNNING)
    second = study.ask(dists)
    assert second.params == cell
    assert duplicate_of(study, second) == first.number


@pytest.mark.parametrize("pruner", ["hyperband", "halving"])
def test_tpe_with_a_multi_fidelity_pruner(storage, tiny_space, tiny, pruner):
    from dataclasses import replace

    space = tiny_space(model=["mlp", "siamese"], lr=[1e-4, 1e-3, 1e-2, 1e-1],
                       optimizer=["adam", "sgd"])
    summary = run_tpe(space, replace(tiny, epochs=4), storage, "t", trials=12, progress=False,
                      pruner=pruner, min_epochs=1, eta=2)
    study = optuna.load_study(study_name="t", storage=storage)
    assert summary.trials == 12
    assert study.user_attrs["pairsearch"]["pruner"] == {"name": pruner, "min_epochs": 1,
                                                        "eta": 2}
    trained = [t for t in study.trials if "reused_from" not in t.user_attrs]
    # Every trained trial reported its per-epoch mean over the folds (steps = epochs).
    assert all(set(t.intermediate_values) <= {0, 1, 2, 3} and t.intermediate_values
               for t in trained)
    pruned = [t for t in trained if t.state == TrialState.PRUNED]
    assert pruned and all(len(t.intermediate_values) < 4 for t in pruned)
    # Each trial records the epochs it trained.
    assert all(t.user_attrs["budget"] == len(t.intermediate_values) for t in pruned)
    assert all(t.user_attrs["budget"] == 4 for t in trained if t.state == TrialState.COMPLETE)


def test_a_bad_pruner_setting_writes_nothing(storage, tiny_space, tiny):
    from pairsearch.search.store.storage import study_names

    with pytest.raises(PairsearchError, match="for min_epochs"):
        run_tpe(tiny_space(), tiny, storage, "t", trials=2, progress=False,
                pruner="hyperband", min_epochs=5)
    assert study_names(storage) == []


def _all_but_one_cell_done(space, tiny, storage, worker: str) -> optuna.Study:
    """A grid study whose cells are all complete but the last, which ``worker`` runs."""
    stopped = StopRequest()
    stopped.requested = True
    run_grid(space, tiny, storage, "g", progress=False, stop=stopped)  # creates the study
    study = optuna.load_study(study_name="g", storage=storage)
    cells, dists = list(space.cells()), distributions(space)
    for cell in cells[:-1]:
        study.enqueue_trial(cell, user_attrs={"cell": cell_key(cell)})
        study.tell(study.ask(dists), 0.5)
    study.enqueue_trial(cells[-1], user_attrs={"cell": cell_key(cells[-1]), "worker": worker})
    study.ask(dists)
    return study


def test_a_grid_worker_waits_for_another_workers_last_cell(tiny_space, tiny, storage):
    # Else an experiment's next stage would read the grid before its last cells are in.
    from pairsearch.search.types import Wait
    from pairsearch.search.strategies import GridStrategy
    from pairsearch.search.workers import HOST

    space = tiny_space()
    study = _all_but_one_cell_done(space, tiny, storage, f"{HOST}:{os.getppid()}")
    grid = GridStrategy(space)
    assert isinstance(grid.propose(study), Wait)
    running = study.get_trials(states=(TrialState.RUNNING,))[0]
    study.tell(running.number, 0.5)
    assert grid.propose(study) is None


def test_a_grid_worker_runs_a_dead_workers_last_cell(tiny_space, tiny, storage):
    from pairsearch.search.workers import HOST

    dead = subprocess.Popen(["true"])
    dead.wait()
    space = tiny_space()
    _all_but_one_cell_done(space, tiny, storage, f"{HOST}:{dead.pid}")
    summary = run_grid(space, tiny, storage, "g", progress=False)
    assert summary.evaluated == 1
    study = optuna.load_study(study_name="g", storage=storage)
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    last = cell_key(list(space.cells())[-1])
    assert [t.user_attrs.get("crashed") is None for t in study.trials
            if cell_key(t.params) == last] == [False, True]


def test_a_tpe_worker_waits_for_others_last_trials(storage):
    from pairsearch.search.types import Wait
    from pairsearch.search.strategies import TpeStrategy

    study = optuna.create_study(storage=storage)
    dists = {"lr": optuna.distributions.CategoricalDistribution([0.01, 0.1])}
    study.tell(study.ask(dists), 0.5)
    running = study.ask(dists)  # another worker's trial, still training
    tpe = TpeStrategy(trials=2)
    assert isinstance(tpe.propose(study), Wait)
    study.tell(running, 0.6)
    assert tpe.propose(study) is None
