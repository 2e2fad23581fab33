"""Optuna's JournalStorage as a pairsearch storage: ``journal:///FILE``.

Whatever works on SQLite works on a journal file: a study runs, resumes without training
again, opens with ``optuna.load_study``, lists and shows; a killed worker's trial is
failed and its cell run again (by pid: a journal has no heartbeats, and is meant for the
processes of one host); several workers share one file.
"""

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
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.search import workers
from pairsearch.search.store.tables import studies_table
from pairsearch.search.store.storage import journal_path, open_storage
from pairsearch.search.strategies import run_grid, run_tpe
from pairsearch.search.driver import recover_dead_trials
from pairsearch.search.workers import Heartbeat


def _reader(path: Path) -> JournalStorage:
    """A storage as a program that knows nothing of pairsearch would open the file."""
    return JournalStorage(JournalFileBackend(str(path)))


def test_journal_urls_are_written_as_sqlite_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert isinstance(open_storage("journal:///studies.log"), JournalStorage)
    assert (tmp_path / "studies.log").is_file()  # relative to the working directory
    absolute = tmp_path / "sub" / "a.log"
    absolute.parent.mkdir()
    assert journal_path(f"journal:///{absolute}") == str(absolute)  # journal:////abs/a.log
    open_storage(f"journal:///{absolute}")
    assert absolute.is_file()


@pytest.mark.parametrize("url", ["journal:", "journal:studies.log", "journal://host/s.log",
                                 "journal:///", "journal:///dir/", "journal:///s.log?x=1"])
def test_a_malformed_journal_url_is_one_line_naming_it(url):
    with pytest.raises(PairsearchError) as error:
        open_storage(url)
    assert str(error.value).startswith(f"bad storage URL {url!r}: expected journal:///FILE")
    assert "\n" not in str(error.value)


def test_journal_files_that_cannot_serve(tmp_path):
    missing = tmp_path / "none.log"
    with pytest.raises(PairsearchError, match="no journal file .*none.log.*nothing stored yet"):
        open_storage(f"journal:///{missing}", create=False)
    assert not missing.exists()  # a read-only command creates nothing
    with pytest.raises(PairsearchError, match="cannot open storage journal:///.*no_dir"):
        open_storage(f"journal:///{tmp_path / 'no_dir' / 's.log'}")
    database = tmp_path / "s.db"
    open_storage(f"sqlite:///{database}")
    before = database.read_bytes()
    with pytest.raises(PairsearchError, match="is an SQLite database; use sqlite:///"):
        open_storage(f"journal:///{database}")
    assert database.read_bytes() == before


def _values(storage, name: str) -> list[tuple]:
    study = optuna.load_study(study_name=name, storage=storage)
    return sorted((str(sorted(t.params.items())), t.state, t.value,
                   t.user_attrs.get("accuracies")) for t in study.trials)


def test_a_journal_study_runs_resumes_and_opens_in_optuna(tmp_path, tiny, tiny_space):
    path = tmp_path / "studies.log"
    url = f"journal:///{path}"
    space = tiny_space()
    first = run_grid(space, tiny, open_storage(url), "g", progress=False)
    assert first.evaluated == space.size and first.trials == space.size
    again = run_grid(space, tiny, open_storage(url), "g", progress=False)
    assert (again.evaluated, again.reused, again.trials) == (0, 0, space.size)
    study = optuna.load_study(study_name="g", storage=_reader(path))
    assert len(study.trials) == space.size
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert {"accuracies", "config_key", "worker", "budget"} <= set(study.trials[0].user_attrs)
    # The same cells score the same as on SQLite.
    sqlite = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    run_grid(space, tiny, sqlite, "g", progress=False)
    assert _values(_reader(path), "g") == _values(sqlite, "g")
    table = studies_table(open_storage(url, create=False))
    assert list(table["study"]) == ["g"] and table["complete"].iloc[0] == space.size


def test_tpe_with_a_pruner_on_a_journal(tmp_path, tiny, tiny_space):
    storage = open_storage(f"journal:///{tmp_path / 's.log'}")
    summary = run_tpe(tiny_space(), tiny, storage, "t", trials=3, progress=False)
    assert summary.trials == 3


def test_a_dead_local_worker_is_failed_on_a_journal(tmp_path, monkeypatch):
    storage = open_storage(f"journal:///{tmp_path / 's.log'}")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    trial.set_user_attr("worker", f"{workers.HOST}:999999999")
    with Heartbeat(study, [trial.number], storage):  # a journal has none: nothing to do
        pass
    monkeypatch.setattr(workers, "alive", lambda pid: False)
    assert recover_dead_trials(study, storage) == 1
    failed = optuna.load_study(study_name=study.study_name, storage=storage).trials[0]
    assert failed.state == TrialState.FAIL and "is gone" in failed.user_attrs["crashed"]


SPACE = '[params]\nmodel = ["mlp", "siamese"]\nlr = [0.001, 0.003, 0.01]\n'
CELLS = 6
FLAGS = ["--folds", "2", "--device", "cpu", "--no-progress", "--study", "s"]


def _start(tmp_path: Path, url: str, *extra: str) -> subprocess.Popen:
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    return subprocess.Popen([sys.executable, "-m", "pairsearch", "grid", "--space", str(space),
                             *FLAGS, "--storage", url, *extra], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trials(path: Path) -> list:
    try:
        return optuna.load_study(study_name="s", storage=_reader(path)).get_trials()
    except KeyError:
        return []


def _every_cell_complete_once(path: Path) -> None:
    done = collections.Counter(str(sorted(t.params.items())) for t in _trials(path)
                               if t.state == TrialState.COMPLETE)
    assert len(done) == CELLS and set(done.values()) == {1}, done


@pytest.mark.process
def test_a_killed_journal_worker_is_recovered_on_resume(tmp_path):
    path = tmp_path / "studies.log"
    url = f"journal:///{path}"
    process = _start(tmp_path, url, "--epochs", "10", "--train-pairs", "400")
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None:
        trials = _trials(path)
        if any(t.state == TrialState.COMPLETE for t in trials) and any(
                t.state == TrialState.RUNNING for t in trials):
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert any(t.state == TrialState.RUNNING for t in _trials(path)), "kill came too late"
    final = _start(tmp_path, url, "--epochs", "10", "--train-pairs", "400")
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    _every_cell_complete_once(path)
    crashed = [t for t in _trials(path) if "crashed" in t.user_attrs]
    assert crashed and all(t.state == TrialState.FAIL for t in crashed)


@pytest.mark.process
def test_two_workers_share_one_journal_file(tmp_path):
    path = tmp_path / "studies.log"
    process = _start(tmp_path, f"journal:///{path}", "--epochs", "2", "--train-pairs", "200",
                     "--workers", "2")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    _every_cell_complete_once(path)
    assert {t.state for t in _trials(path)} <= {TrialState.COMPLETE, TrialState.PRUNED}
