"""Search commands through subprocesses against a temporary database, and the dashboard."""

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

pytestmark = pytest.mark.process  # pairsearch runs in subprocesses here

TINY = ["--epochs", "1", "--folds", "2", "--train-pairs", "120", "--test-pairs", "60",
        "--device", "cpu", "--no-progress"]


def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pairsearch", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


@pytest.fixture
def space_file(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text('[params]\nmodel = ["mlp", "siamese_aux"]\nlr = [0.001, 0.01]\n')
    return path


def test_grid_genetic_tpe_show_studies(tmp_path, space_file):
    grid = run("grid", "--space", str(space_file), *TINY, cwd=tmp_path)
    assert grid.returncode == 0, grid.stderr
    assert (tmp_path / "studies.db").is_file()  # default storage in the working directory
    assert "study tiny-grid: 4 finished trials" in grid.stdout
    ga = run("genetic", "--space", str(space_file), "--pop", "3", "--gens", "2", *TINY,
             cwd=tmp_path)
    assert ga.returncode == 0, ga.stderr
    tpe = run("tpe", "--space", str(space_file), "--trials", "3", *TINY, "--precision", "bf16",
              cwd=tmp_path)
    assert tpe.returncode == 0, tpe.stderr
    studies = run("studies", cwd=tmp_path)
    assert studies.returncode == 0
    for name in ("tiny-grid", "tiny-genetic", "tiny-tpe"):
        assert name in studies.stdout
    show = run("show", "--study", "tiny-grid", "--top", "2", "--csv", "best.csv", cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert (tmp_path / "best.csv").read_text().count("\n") == 3
    study = optuna.load_study(study_name="tiny-genetic",
                              storage=f"sqlite:///{tmp_path / 'studies.db'}")
    assert len(study.trials) == 6
    tpe_trials = optuna.load_study(study_name="tiny-tpe",
                                   storage=f"sqlite:///{tmp_path / 'studies.db'}").trials
    assert {t.user_attrs["precision"] for t in tpe_trials} == {"bf16"}


@pytest.mark.parametrize("args, message", [
    (["grid", "--space", "nope.toml"], "not found"),
    (["grid", "--storage", "postgresql"], "bad storage URL"),
    (["genetic", "--pop", "1"], "--pop"),
    (["genetic", "--gens", "0"], "--gens"),
    (["genetic", "--survivors", "1.5"], "--survivors"),
    (["tpe", "--trials", "0"], "--trials"),
    (["grid", "--folds", "1"], "K >= 2"),
    (["grid", "--space", "quick", "--folds", "1000"], "cannot make 1000 stratified folds"),
    (["grid", "--halving", "--space", "quick", "--epochs", "4", "--min-epochs", "9"],
     "bad value 9 for --min-epochs"),
    (["tpe", "--trials", "3", "--pruner", "hyperband", "--eta", "1"], "bad value 1 for --eta"),
    (["tpe", "--trials", "3", "--batching", "on"], "bad value 'on' for --batching"),
    (["tpe", "--trials", "3", "--sampler", "cmaes"], "invalid choice: 'cmaes'"),
    (["show", "--study", "nothing"], "no database"),
])
def test_bad_search_input(tmp_path, args, message):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert not (tmp_path / "studies.db").exists() or "show" in args


def test_changed_protocol_leaves_database_unchanged(tmp_path, space_file):
    assert run("grid", "--space", str(space_file), *TINY, cwd=tmp_path).returncode == 0
    before = (tmp_path / "studies.db").read_bytes()
    result = run("grid", "--space", str(space_file), *TINY[:-1], "--seed", "3", "--no-progress",
                 cwd=tmp_path)
    assert result.returncode == 2 and "different protocol" in result.stderr
    assert (tmp_path / "studies.db").read_bytes() == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_api_lists_study_and_trials(tmp_path, space_file):
    assert run("grid", "--space", str(space_file), *TINY, cwd=tmp_path).returncode == 0
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "pairsearch", "dashboard", "--port",
                               str(port)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        summaries = None
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=5) as response:
                    summaries = json.load(response)["study_summaries"]
                break
            except OSError:
                time.sleep(0.5)
        assert summaries is not None, "dashboard did not answer"
        study = next(s for s in summaries if s["study_name"] == "tiny-grid")
        with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/studies/{study['study_id']}?after=0",
                timeout=10) as response:
            detail = json.load(response)
        assert len(detail["trials"]) == 4
        assert all(t["state"] == "Complete" for t in detail["trials"])
    finally:
        server.terminate()
        server.wait(timeout=10)
