"""The search commands on a journal file (``--storage journal:///FILE``), through
subprocesses as a user runs them, and optuna-dashboard opening that file."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

pytestmark = pytest.mark.process  # pairsearch runs in subprocesses here

TINY = ["--epochs", "1", "--folds", "2", "--train-pairs", "120", "--test-pairs", "60",
        "--device", "cpu", "--no-progress"]
DASHBOARD = Path(sys.executable).with_name("optuna-dashboard")  # its console script


def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pairsearch", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dashboard_studies(path: Path, cwd: Path) -> list[dict]:
    """The study summaries ``optuna-dashboard FILE`` serves for a journal file."""
    port = _free_port()
    server = subprocess.Popen([str(DASHBOARD), str(path), "--port", str(port)], cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=5) as response:
                    return json.load(response)["study_summaries"]
            except OSError:
                time.sleep(0.5)
        raise AssertionError("optuna-dashboard did not answer")
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_grid_twice_studies_show_and_dashboard_on_a_journal_file(tmp_path):
    (tmp_path / "tiny.toml").write_text('[params]\nmodel = ["mlp", "siamese_aux"]\n'
                                        'lr = [0.001, 0.01]\n')
    storage = ["--storage", "journal:///studies.log"]  # relative to the working directory
    grid = run("grid", "--space", "tiny.toml", *TINY, *storage, cwd=tmp_path)
    assert grid.returncode == 0, grid.stderr
    assert "study tiny-grid: 4 finished trials; this run evaluated 4" in grid.stdout
    assert (tmp_path / "studies.log").is_file() and not (tmp_path / "studies.db").exists()
    again = run("grid", "--space", "tiny.toml", *TINY, *storage, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "study tiny-grid: 4 finished trials; this run evaluated 0, reused 0" in again.stdout
    studies = run("studies", *storage, cwd=tmp_path)
    assert studies.returncode == 0 and "tiny-grid" in studies.stdout, studies.stderr
    show = run("show", "--study", "tiny-grid", "--top", "2", *storage, cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert len(show.stdout.strip().splitlines()) == 3  # a header and the top 2 trials
    missing = run("studies", "--storage", "journal:///none.log", cwd=tmp_path)
    assert missing.returncode == 2 and "no journal file none.log" in missing.stderr
    assert not (tmp_path / "none.log").exists()
    study = optuna.load_study(study_name="tiny-grid", storage=JournalStorage(
        JournalFileBackend(str(tmp_path / "studies.log"))))
    assert len(study.trials) == 4 and {"accuracies", "worker"} <= set(study.trials[0].user_attrs)
    if DASHBOARD.is_file():
        names = [s["study_name"] for s in _dashboard_studies(tmp_path / "studies.log", tmp_path)]
        assert names == ["tiny-grid"]
