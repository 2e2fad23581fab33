"""Studies written by pairsearch before the search layer's refactor (commit 7c1c73c) load,
show and continue with today's code. The file is test data made by
tests/fixtures/make_v1_studies.sh; each test works on a copy of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

pytestmark = pytest.mark.process  # pairsearch runs in subprocesses here

FIXTURES = Path(__file__).parent.parent / "fixtures"
# The protocol the stored studies were made with (make_v1_studies.sh).
PROTOCOL = ["--space", str(FIXTURES / "tiny.toml"), "--train-pairs", "120",
            "--test-pairs", "60", "--folds", "2", "--device", "cpu", "--no-progress"]
STUDIES = ("v1-grid", "v1-halving", "v1-genetic", "v1-tpe", "v1-grid-retest")


@pytest.fixture
def db(tmp_path) -> str:
    shutil.copy(FIXTURES / "studies-v1.db", tmp_path / "studies.db")
    return f"sqlite:///{tmp_path / 'studies.db'}"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pairsearch", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def trials(db: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=db).trials


def test_old_studies_list_and_show(db, tmp_path, capsys):
    listed = run("studies", "--storage", db, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    from pairsearch.cli import main  # in this process: one start-up instead of five

    for name in STUDIES:
        assert name in listed.stdout
        assert main(["show", "--study", name, "--storage", db]) == 0, name
        shown = capsys.readouterr()
        assert "Traceback" not in shown.err, name
        assert " lr " in shown.out and len(shown.out.splitlines()) >= 2, name  # its table
        if name == "v1-halving":
            assert "rung" in shown.out.lower()


def test_old_grid_and_halving_continue_without_training(db, tmp_path):
    for name, extra in (("v1-grid", ["--epochs", "1"]),
                        ("v1-halving", ["--halving", "--min-epochs", "1", "--eta", "2",
                                        "--epochs", "2"])):
        before = len(trials(db, name))
        again = run("grid", *PROTOCOL, "--storage", db, "--study", name, *extra, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "this run evaluated 0" in again.stdout, again.stdout
        assert len(trials(db, name)) == before


def test_old_tpe_recovers_its_killed_trial_and_continues(db, tmp_path):
    before = trials(db, "v1-tpe")
    dead = [t.number for t in before if t.state == TrialState.RUNNING]
    assert dead, "the stored TPE study holds the trial its killed worker left RUNNING"
    finished = sum(t.state == TrialState.COMPLETE for t in before)
    # --trials counts failed trials as finished (as Optuna's n_trials does): the dead one
    # becomes one, and one more trial completes.
    more = run("tpe", *PROTOCOL, "--storage", db, "--study", "v1-tpe", "--epochs", "100",
               "--pruner", "none", "--trials", str(len(before) + 1), cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    after = {t.number: t for t in trials(db, "v1-tpe")}
    assert all(after[n].state == TrialState.FAIL for n in dead)
    assert sum(t.state == TrialState.COMPLETE for t in after.values()) == finished + 1
    assert not any(t.state == TrialState.RUNNING for t in after.values())


def test_old_genetic_search_continues_its_generations(db, tmp_path):
    def generations() -> set[int]:
        return {t.user_attrs["generation"] for t in trials(db, "v1-genetic")
                if "generation" in t.user_attrs}

    assert generations() == {0, 1}
    more = run("genetic", *PROTOCOL, "--storage", db, "--study", "v1-genetic", "--epochs",
               "1", "--pop", "4", "--gens", "3", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert generations() == {0, 1, 2}
