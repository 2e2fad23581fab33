"""A trial's attributes in one write: the same attributes, far fewer transactions.

``storage.set_trial_user_attrs`` reaches into Optuna's RDB and journal internals; the
first test fails if the installed Optuna moved them (the per-attribute fallback would
then keep pairsearch correct but slow again).
"""

from __future__ import annotations

import os

import optuna
import pytest
import sqlalchemy
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from pairsearch.search.store import storage as storage_module
from pairsearch.search.store.storage import (
    one_write,
    open_storage,
    set_trial_user_attrs,
    study_names,
    study_storage,
    trial_id,
)
from pairsearch.search.strategies import run_grid, run_tpe

ATTRS = {"config_key": '{"lr": 0.01}', "accuracies": [0.5, 0.75, 1.0], "accuracy_std": None,
         "params": 1234, "device": "cpu", "protocol": {"folds": 3, "kind": "cv"},
         "fail_reason": "NaN loss"}


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def any_storage(request, tmp_path):
    """SQLite, a journal file, and PostgreSQL where PAIRSEARCH_TEST_POSTGRES names one (the
    studies a test makes there are deleted after it)."""
    if request.param == "postgresql":
        url = os.environ.get("PAIRSEARCH_TEST_POSTGRES")
        if not url:
            pytest.skip("PAIRSEARCH_TEST_POSTGRES (a PostgreSQL URL) not set")
        storage = open_storage(url)
        before = set(study_names(storage))
        yield storage
        for name in set(study_names(storage)) - before:
            optuna.delete_study(study_name=name, storage=storage)
        return
    name = "s.db" if request.param == "sqlite" else "s.log"
    prefix = "sqlite:///" if request.param == "sqlite" else "journal:///"
    yield open_storage(f"{prefix}{tmp_path / name}")


def _per_attribute(monkeypatch) -> None:
    """Make ``set_trial_user_attrs`` take its fallback: one Optuna call per attribute."""
    monkeypatch.setattr(storage_module, "_rdb_one_write", lambda storage: False)
    monkeypatch.setattr(storage_module, "_journal_one_write", lambda storage: False)


def test_the_installed_optuna_has_what_the_one_write_paths_use(tmp_path):
    rdb = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    journal = open_storage(f"journal:///{tmp_path / 's.log'}")
    assert isinstance(journal, JournalStorage)
    assert one_write(rdb) and one_write(journal)
    # What a study holds: the RDB storage inside Optuna's cache.
    assert one_write(study_storage(optuna.create_study(storage=rdb)))
    assert not one_write(optuna.storages.InMemoryStorage())


def test_one_write_stores_what_one_call_per_attribute_stores(any_storage, monkeypatch):
    study = optuna.create_study(storage=any_storage)
    ids = [trial_id(any_storage, study, study.ask().number) for _ in range(2)]
    set_trial_user_attrs(any_storage, ids[0], {"worker": "h:1", "budget": 3})
    set_trial_user_attrs(any_storage, ids[0], {**ATTRS, "budget": 4})  # one key overwritten
    with monkeypatch.context() as patch:
        _per_attribute(patch)
        set_trial_user_attrs(any_storage, ids[1], {"worker": "h:1", "budget": 3})
        set_trial_user_attrs(any_storage, ids[1], {**ATTRS, "budget": 4})
    expected = {"worker": "h:1", **ATTRS, "budget": 4}
    assert any_storage.get_trial(ids[0]).user_attrs == expected
    assert any_storage.get_trial(ids[1]).user_attrs == expected


def test_a_journal_written_at_once_replays_in_another_reader(tmp_path):
    path = tmp_path / "s.log"
    storage = open_storage(f"journal:///{path}")
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    set_trial_user_attrs(storage, trial_id(storage, study, trial.number), ATTRS)
    study.tell(trial, 0.5)
    again = optuna.load_study(study_name="s",
                              storage=JournalStorage(JournalFileBackend(str(path))))
    assert again.trials[0].user_attrs == ATTRS and again.trials[0].value == 0.5


def test_a_finished_trial_is_not_written(any_storage):
    study = optuna.create_study(storage=any_storage)
    trial = study.ask()
    study.tell(trial, 0.5)
    identifier = trial_id(any_storage, study, trial.number)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_trial_user_attrs(any_storage, identifier, ATTRS)
    assert any_storage.get_trial(identifier).user_attrs == {}
    # The journal replays its own lines without a second error on the next read.
    assert study.trials[0].state == TrialState.COMPLETE


def test_a_storage_without_one_write_gets_every_attribute():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    study.ask()
    set_trial_user_attrs(storage, 0, ATTRS)
    assert storage.get_trial(0).user_attrs == ATTRS


def _write_commits(storage: optuna.storages.RDBStorage, counts) -> list[int]:
    """Count the transactions with a statement ``counts(statement)`` is true of (a list of
    one int, updated as they commit)."""
    count, wrote = [0], [False]

    @sqlalchemy.event.listens_for(storage.engine, "before_cursor_execute")
    def _statement(conn, cursor, statement, *args) -> None:
        if counts(statement):
            wrote[0] = True

    @sqlalchemy.event.listens_for(storage.engine, "commit")
    def _commit(conn) -> None:
        if wrote[0]:
            count[0] += 1
            wrote[0] = False

    return count


def _attribute_commits(storage: optuna.storages.RDBStorage) -> list[int]:
    """Count the transactions that wrote trial user attributes."""
    return _write_commits(storage, lambda statement: "trial_user_attributes" in statement
                          and not statement.lstrip().startswith("SELECT"))


def _snapshot(storage, name: str) -> list[tuple]:
    """Per trial: number, state, value, params and user attributes but the training time."""
    study = optuna.load_study(study_name=name, storage=storage)
    return [(t.number, t.state, t.value, t.params,
             {k: v for k, v in t.user_attrs.items() if k != "train_seconds"})
            for t in study.trials]


def test_a_grid_stores_the_same_attributes_in_one_write_per_trial(tmp_path, tiny, tiny_space,
                                                                  monkeypatch):
    space = tiny_space()
    new = open_storage(f"sqlite:///{tmp_path / 'new.db'}")
    commits = _attribute_commits(new)
    run_grid(space, tiny, new, "g", progress=False)
    new_commits = commits[0]
    old = open_storage(f"sqlite:///{tmp_path / 'old.db'}")
    commits = _attribute_commits(old)
    with monkeypatch.context() as patch:
        _per_attribute(patch)
        run_grid(space, tiny, old, "g", progress=False)
    old_commits = commits[0]
    assert _snapshot(new, "g") == _snapshot(old, "g")
    columns = optuna.load_study(study_name="g", storage=new).trials_dataframe().columns
    assert list(columns) == list(optuna.load_study(study_name="g",
                                                   storage=old).trials_dataframe().columns)
    assert {"user_attrs_accuracies", "user_attrs_config_key", "user_attrs_worker",
            "user_attrs_train_seconds", "user_attrs_budget"} <= set(columns)
    trials = space.size
    # A grid trial is queued with its labels (one write) and stores its results (one).
    assert new_commits == 2 * trials, (new_commits, old_commits)
    assert old_commits > 10 * trials


def test_a_sampled_trial_is_labelled_then_written_once(tmp_path, tiny, tiny_space):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    commits = _attribute_commits(storage)
    run_tpe(tiny_space(), tiny, storage, "t", trials=2, progress=False)
    study = optuna.load_study(study_name="t", storage=storage)
    assert all("worker" in t.user_attrs and "accuracies" in t.user_attrs for t in study.trials)
    assert commits[0] <= 2 * len(study.trials)


def _writes(statement: str) -> bool:
    """Whether a statement writes (pairsearch begins every SQLite transaction with ``BEGIN
    IMMEDIATE``: not a write in itself)."""
    return not statement.lstrip().upper().startswith(("SELECT", "PRAGMA", "BEGIN"))


def test_a_grid_trial_costs_four_writes_from_start_to_tell(tmp_path, tiny, tiny_space):
    # A cell's RUNNING trial is created whole (params, claim, worker) in one write, where
    # enqueue_trial + ask took one per dimension and two more; then the heartbeat, the
    # results and tell: 4 writes per trial, whatever the number of dimensions. Counted as
    # the difference between a 4-cell and a 2-cell grid (the study's own writes cancel).
    def writes(space, name: str) -> int:
        storage = open_storage(f"sqlite:///{tmp_path / name}")
        commits = _write_commits(storage, _writes)
        run_grid(space, tiny, storage, "g", progress=False)
        study = optuna.load_study(study_name="g", storage=storage)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * space.size
        assert all(set(t.params) == set(space.params) for t in study.trials)
        assert all({"cell", "worker", "accuracies"} <= set(t.user_attrs)
                   for t in study.trials)
        return commits[0]

    dimensions = {"model": ["mlp"], "optimizer": ["adam"], "batch_size": [50, 100]}
    two = writes(tiny_space(**dimensions, lr=[1e-3]), "two.db")
    four = writes(tiny_space(**dimensions, lr=[1e-3, 1e-2]), "four.db")
    assert (four - two) / 2 == 4, (two, four)
