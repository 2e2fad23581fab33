"""What a trial pays for crash safety: a heartbeat recorded beside the training, and the
look-up of other hosts' stale trials once per heartbeat interval rather than per trial."""

from __future__ import annotations

import time

import optuna
import sqlalchemy
from optuna.trial import TrialState

from pairsearch.search import workers
from pairsearch.search.store.storage import open_storage, trial_id
from pairsearch.search.driver import recover_dead_trials
from pairsearch.search.workers import Heartbeat


def _heartbeats(storage: optuna.storages.RDBStorage) -> set[int]:
    with storage.engine.connect() as connection:
        return set(connection.execute(
            sqlalchemy.text("SELECT trial_id FROM trial_heartbeats")).scalars())


def test_the_first_beat_is_recorded_while_the_trial_runs(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with Heartbeat(study, [trial.number], storage):
        deadline = time.monotonic() + 30
        while not _heartbeats(storage) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _heartbeats(storage) == {trial_id(storage, study, trial.number)}
    study.tell(trial, 0.5)


def test_a_short_trial_leaves_its_beat_before_it_is_told(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with Heartbeat(study, [trial.number], storage):
        pass  # leaving waits for the thread's first beat
    assert _heartbeats(storage) == {trial_id(storage, study, trial.number)}


def test_stale_trials_are_looked_for_once_per_heartbeat_interval(tmp_path, monkeypatch):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    calls = []
    real = optuna.storages.fail_stale_trials
    monkeypatch.setattr(optuna.storages, "fail_stale_trials",
                        lambda study: calls.append(study.study_name) or real(study))
    monkeypatch.setattr(workers, "_stale_checked", {})
    recover_dead_trials(study, storage)
    recover_dead_trials(study, storage)
    assert calls == ["s"]
    for key in workers._stale_checked:  # as if a heartbeat interval had passed
        workers._stale_checked[key] -= storage.get_heartbeat_interval()
    recover_dead_trials(study, storage)
    assert calls == ["s", "s"]
    other = optuna.create_study(storage=storage, study_name="other")
    recover_dead_trials(other, storage)  # each study has its own clock
    assert calls == ["s", "s", "other"]


def test_a_dead_local_worker_is_still_failed_at_every_call(tmp_path, monkeypatch):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage)
    recover_dead_trials(study, storage)  # the stale look-up is now not due
    trial = study.ask()
    trial.set_user_attr("worker", f"{workers.HOST}:999999999")
    monkeypatch.setattr(workers, "alive", lambda pid: False)
    assert recover_dead_trials(study, storage) == 1
    assert study.trials[0].state == TrialState.FAIL
