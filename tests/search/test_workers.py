"""What lets workers share a study: identities, dead trials, the study lease, start-up."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.errors import StudyOwned
from pairsearch.names import Attr
from pairsearch.search import workers


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_worker_id_is_host_and_pid():
    assert workers.worker_id() == f"{workers.HOST}:{os.getpid()}"


def test_alive():
    assert workers.alive(os.getpid())
    assert not workers.alive(_dead_pid())


def test_enqueue_owned_labels_the_queued_trial_with_this_worker(storage):
    study = optuna.create_study(study_name="q", storage=storage)
    workers.enqueue_owned(study, {"x": 1}, {"cell": "x=1"})
    (queued,) = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert queued.user_attrs == {"cell": "x=1", Attr.WORKER: workers.worker_id()}


def test_dead_trials_are_those_of_gone_workers_on_this_host(storage):
    study = optuna.create_study(study_name="d", storage=storage)
    mine, theirs, elsewhere = study.ask(), study.ask(), study.ask()
    mine.set_user_attr(Attr.WORKER, workers.worker_id())
    theirs.set_user_attr(Attr.WORKER, f"{workers.HOST}:{_dead_pid()}")
    elsewhere.set_user_attr(Attr.WORKER, "another-host:1")  # its heartbeat decides
    dead = workers.dead_trials(study)
    assert [number for number, _ in dead] == [theirs.number]
    assert "is gone" in dead[0][1]


def test_the_study_lease_has_one_live_owner(storage):
    study = optuna.create_study(study_name="g", storage=storage)
    lease = workers.StudyLease(study, "owner", "genetic study")
    lease.acquire()
    assert study.user_attrs["owner"]["worker"] == workers.worker_id()
    lease.acquire()  # the owner itself may take it again (a resumed run)
    # A live owner elsewhere (a recent beat) refuses this process.
    study.set_user_attr("owner", {"worker": "another-host:1", "beat": 1e18})
    with pytest.raises(StudyOwned, match="genetic study 'g' is being run by another-host:1"):
        lease.acquire()
    # A dead owner on this host is taken over.
    study.set_user_attr("owner", {"worker": f"{workers.HOST}:{_dead_pid()}", "beat": 0})
    lease.acquire()
    lease.release()
    assert study.user_attrs["owner"] is None


def test_worker_argv_makes_every_worker_a_single_one():
    assert workers.worker_argv(["grid", "--workers", "3"]) == [
        "grid", "--workers", "3", "--workers", "1", "--no-progress"]


def test_start_workers_alone_takes_its_thread_share(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("PAIRSEARCH_THREADS", "1")
    try:
        assert workers.start_workers(["grid"], 1) == []  # no other worker for N = 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
