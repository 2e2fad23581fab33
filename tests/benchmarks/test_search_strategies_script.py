"""benchmarks/search_strategies.py end to end on a tiny space: every kind of strategy it
compares runs through the search layer and is summarised against the exhaustive grid."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.process  # the script runs in a subprocess

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "search_strategies.py"


def test_strategies_are_compared_with_the_exhaustive_best(tmp_path):
    space = tmp_path / "tiny.toml"
    space.write_text('[params]\nmodel = ["mlp", "siamese_aux"]\nlr = [0.001, 0.01]\n')
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--space", str(space), "--epochs", "2",
         "--train-pairs", "120", "--folds", "2", "--seeds", "0-1", "--tpe-trials", "3",
         "--pop", "3", "--gens", "2", "--strategies", "grid,tpe,random,nsga2-median,ga-faithful",
         "--storage", f"sqlite:///{tmp_path / 'bench.db'}", "--out", str(tmp_path / "plot"),
         "--json", str(summary)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(summary.read_text())
    assert set(result["strategies"]) == {"tpe", "random", "nsga2-median", "ga-faithful"}
    grid_best = result["exhaustive_best"]
    for name, figures in result["strategies"].items():
        assert figures["runs"] == 2, name  # one run per seed
        assert 0 <= figures["reached"] <= 2
        # The pairs, folds and initialisations are shared, so a configuration scores the
        # same in every study: no strategy can beat the grid that tried every cell.
        assert max(figures["best"]) <= grid_best + 1e-12, name
        assert figures["reached"] == sum(b == grid_best for b in figures["best"]), name
    assert (tmp_path / "plot.png").is_file()
    assert 0.0 < grid_best <= 1.0


def test_a_replay_from_a_table_retraces_the_real_runs(tmp_path):
    """A grid with curves exported as a table; real TPE and GA runs at the same protocol; the
    replay of each with the same seed picks the same trials in the same order."""
    space = tmp_path / "tiny.toml"
    space.write_text('[params]\nmodel = ["mlp", "siamese_aux"]\nlr = [0.001, 0.01, 0.1]\n')
    real = f"sqlite:///{tmp_path / 'real.db'}"
    flags = ["--space", str(space), "--epochs", "3", "--train-pairs", "120", "--folds", "2",
             "--device", "cpu", "--no-progress", "--storage", real]

    def pairsearch(*args):
        done = subprocess.run([sys.executable, "-m", "pairsearch", *args], capture_output=True,
                              text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout

    pairsearch("grid", *flags, "--curves", "--study", "bench-grid")
    assert "learning curves yes" in pairsearch("export", "--storage", real, "--study",
                                               "bench-grid", "--out", "table.json.gz")
    for seed in (0, 1):
        pairsearch("tpe", *flags, "--trials", "4", "--strategy-seed", str(seed),
                   "--study", f"bench-tpe-s{seed}")
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--table", "table.json.gz", "--space", str(space),
         "--seeds", "0-5",
         "--tpe-trials", "4", "--strategies", "halving,tpe,ga-faithful", "--pop", "3",
         "--gens", "2", "--real", real, "--out", str(tmp_path / "plot"), "--json",
         str(summary)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(summary.read_text())
    assert result["strategies"]["tpe"]["runs"] == 6 and result["strategies"]["halving"]["runs"] == 1
    assert result["exhaustive_epochs"] == 6 * 3  # the replayed grid trains every cell fully
    checks = result["real_runs"]
    assert [c["study"] for c in checks] == ["bench-tpe-s0", "bench-tpe-s1"]
    assert all(c["same_trials"] and c["same_best"] for c in checks), checks
