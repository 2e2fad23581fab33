"""Crash safety, concurrent workers, Ctrl-C, failures inside trials, reproducibility."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.search import workers
from pairsearch.search.driver import recover_dead_trials
from pairsearch.search.types import SearchSettings
from pairsearch.search.space import space_from_dict
from pairsearch.search.store.storage import open_storage
from pairsearch.search.strategies import run_grid

SPACE = '[params]\nmodel = ["mlp", "siamese"]\nlr = [0.001, 0.003, 0.01]\n'
CELLS = 6
FLAGS = ["--epochs", "2", "--folds", "2", "--train-pairs", "200", "--device", "cpu",
         "--no-progress", "--study", "s"]


def start(tmp_path: Path, *extra: str, storage: str | None = None,
          debug: bool = False) -> subprocess.Popen:
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    args = ["grid", "--space", str(space), *FLAGS, *extra]
    if storage:
        args += ["--storage", storage]
    # debug: a storage error raises with its traceback instead of the one-line message,
    # so a failure names the operation the storage refused.
    env = {**os.environ, "PAIRSEARCH_DEBUG": "1"} if debug else None
    return subprocess.Popen([sys.executable, "-m", "pairsearch", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def trials(url: str) -> list:
    try:
        return optuna.load_study(study_name="s", storage=url).get_trials(deepcopy=False)
    except KeyError:
        return []


def assert_every_cell_complete_once(url: str) -> None:
    done = collections.Counter(str(sorted(t.params.items())) for t in trials(url)
                               if t.state == TrialState.COMPLETE)
    assert len(done) == CELLS and set(done.values()) == {1}, done


OPEN_NEW_STORAGE = """
import sys
from pairsearch.search.store.storage import open_storage
open_storage(sys.argv[1])
"""


@pytest.mark.process
def test_many_processes_create_one_new_database_at_once(tmp_path):
    """Optuna's schema creation races between processes; every opener must still succeed."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_NEW_STORAGE, url],
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert optuna.get_all_study_summaries(url) == []


@pytest.mark.process
def test_sigkill_at_several_points_then_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    hits = 0
    for wanted in (0, 2, 4):  # kill during the first trial, and after 2 and 4 results
        process = start(tmp_path, "--epochs", "10", "--train-pairs", "400")
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            done = [t for t in trials(url) if t.state == TrialState.COMPLETE]
            running = [t for t in trials(url) if t.state == TrialState.RUNNING
                       and t.user_attrs.get("worker", "").endswith(f":{process.pid}")]
            if len(done) >= wanted and running:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        hits += any(t.state == TrialState.RUNNING for t in trials(url))
    assert hits >= 2, "the kills should leave RUNNING trials behind"
    final = start(tmp_path, "--epochs", "10", "--train-pairs", "400")
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert_every_cell_complete_once(url)
    crashed = [t for t in trials(url) if "crashed" in t.user_attrs]
    assert crashed and all(t.state == TrialState.FAIL for t in crashed)


DIE_AFTER_ASK = """
import os, sys
from pairsearch.search import trial_evaluator
from pairsearch.search.types import SearchSettings
from pairsearch.search.space import space_from_dict
from pairsearch.search.store.storage import open_storage
from pairsearch.search.strategies import run_grid

def killed(self, asked, *args, **kwargs):
    os._exit(9)  # as if SIGKILLed between study.ask and the start of the trial

trial_evaluator.TrialEvaluator.evaluate = killed
space = space_from_dict("s", {"params": {"model": ["mlp"], "lr": [0.001, 0.01]}})
run_grid(space, SearchSettings(folds=2, epochs=1, train_pairs=100, device="cpu"),
         open_storage(sys.argv[1]), "s", progress=False)
"""


@pytest.mark.process
def test_a_worker_killed_right_after_ask_leaves_no_cell_stuck(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    died = subprocess.run([sys.executable, "-c", DIE_AFTER_ASK, url], capture_output=True,
                          text=True, timeout=120)
    assert died.returncode == 9, died.stderr
    assert [t.state for t in trials(url)] == [TrialState.RUNNING]
    space = space_from_dict("s", {"params": {"model": ["mlp"], "lr": [0.001, 0.01]}})
    run_grid(space, SearchSettings(folds=2, epochs=1, train_pairs=100, device="cpu"),
             open_storage(url), "s", progress=False)
    states = collections.Counter(t.state for t in trials(url))
    assert states == {TrialState.COMPLETE: 2, TrialState.FAIL: 1}, states


def test_an_unlabelled_running_trial_is_failed_only_when_old(tmp_path, monkeypatch):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'a.db'}"))
    study.ask()  # RUNNING, no worker label: its worker died before labelling it
    assert recover_dead_trials(study) == 0  # it may still be labelled
    monkeypatch.setattr(workers, "UNLABELLED_SECONDS", -1)
    assert recover_dead_trials(study) == 1
    assert "no worker took it up" in study.trials[0].user_attrs["crashed"]
    assert study.trials[0].state == TrialState.FAIL


@pytest.mark.process
def test_sigint_stops_between_trials_and_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    process = start(tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not any(t.state == TrialState.COMPLETE for t in trials(url)):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "run the same command again to resume" in out
    assert "Traceback" not in err
    assert not [t for t in trials(url) if t.state == TrialState.RUNNING]
    final = start(tmp_path)
    assert final.wait(timeout=300) == 0
    assert_every_cell_complete_once(url)


def _concurrent(tmp_path, url: str, workers: int) -> None:
    processes = [start(tmp_path, storage=url, debug=True) for _ in range(workers)]
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        assert "locked" not in err.lower()
    assert_every_cell_complete_once(url)
    assert not [t for t in trials(url) if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.process
def test_four_processes_on_one_sqlite_study(tmp_path):
    _concurrent(tmp_path, f"sqlite:///{tmp_path / 'studies.db'}", 4)


@pytest.mark.process
def test_workers_flag(tmp_path):
    process = start(tmp_path, "--workers", "3", "--epochs", "15", "--train-pairs", "500")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    assert_every_cell_complete_once(url)
    # How many of the three processes got a cell is the scheduler's business (a fast
    # parent can finish before the others have imported torch); correctness is above.
    assert 1 <= len({t.user_attrs.get("worker") for t in trials(url)
                     if t.state == TrialState.COMPLETE}) <= 3


@pytest.mark.process
@pytest.mark.skipif(not os.environ.get("PAIRSEARCH_TEST_POSTGRES"),
                    reason="PAIRSEARCH_TEST_POSTGRES (a PostgreSQL URL) not set")
def test_workers_on_postgresql(tmp_path):
    url = os.environ["PAIRSEARCH_TEST_POSTGRES"]
    try:
        optuna.delete_study(study_name="s", storage=url)
    except KeyError:
        pass
    _concurrent(tmp_path, url, 3)
    optuna.delete_study(study_name="s", storage=url)


def test_error_inside_a_trial_is_a_fail_trial_and_the_search_goes_on(tmp_path, monkeypatch):
    from pairsearch.search import trial_evaluator as runner_module

    real = runner_module.evaluate

    def sometimes_out_of_memory(config, *args, **kwargs):
        if config.train.lr == 0.003:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(runner_module, "evaluate", sometimes_out_of_memory)
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    space = space_from_dict("s", {"params": {"model": ["mlp"], "lr": [0.001, 0.003, 0.01]}})
    settings = SearchSettings(folds=2, epochs=1, train_pairs=100, device="cpu")
    summary = run_grid(space, settings, storage, "s", progress=False)
    assert summary.failed == 1 and summary.trials == 3
    study = optuna.load_study(study_name="s", storage=storage)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert "out of memory" in failed[0].user_attrs["fail_reason"]


def test_same_command_same_seed_same_values(tmp_path):
    values = []
    for name in ("a", "b"):
        storage = open_storage(f"sqlite:///{tmp_path / name}.db")
        space = space_from_dict("s", {"params": {"model": ["siamese_aux", "mlp"],
                                                 "lr": [0.001, 0.01]}})
        run_grid(space, SearchSettings(folds=2, epochs=2, train_pairs=150, device="cpu", seed=4),
                 storage, "s", progress=False)
        study = optuna.load_study(study_name="s", storage=storage)
        values.append([(t.params, t.value, t.user_attrs["accuracies"]) for t in study.trials])
    assert values[0] == values[1]


@pytest.mark.process
def test_two_tpe_processes_share_one_study(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    command = [sys.executable, "-m", "pairsearch", "tpe", "--space", str(space), "--trials", "8",
               *FLAGS]
    processes = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    finished = [t for t in trials(url) if t.state.is_finished()]
    # Both stop at 8; a worker that asked while the other's last trial ran may add one.
    assert 8 <= len(finished) <= 9
    assert not [t for t in trials(url) if t.state == TrialState.RUNNING]


@pytest.mark.process
def test_a_killed_halving_run_resumes_from_its_checkpoints(tmp_path):
    halving = ["--halving", "--min-epochs", "1", "--eta", "2", "--epochs", "4",
               "--precision", "fp32"]
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    process = start(tmp_path, *halving)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        # Killed while rung 1 trains: rung 0's checkpoints are on disk.
        if any(t.state == TrialState.RUNNING and t.user_attrs.get("rung") == 1
               for t in trials(url)):
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list((tmp_path / "studies.db.checkpoints").glob("*/*.pt"))
    final = start(tmp_path, *halving)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    study = trials(url)
    assert any("resumed_from" in t.user_attrs for t in study)
    assert not (tmp_path / "studies.db.checkpoints").exists()
    # The same full-budget results as a run never killed.
    whole = start(tmp_path, *halving, storage=f"sqlite:///{tmp_path / 'whole.db'}")
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err

    def full(url):
        return sorted((str(t.params), t.value) for t in trials(url)
                      if t.state == TrialState.COMPLETE)

    assert full(url) == full(f"sqlite:///{tmp_path / 'whole.db'}")
