"""benchmarks/full_protocol.py: a study's choice is judged by the grid's own measurements."""

from __future__ import annotations

import importlib.util
import pathlib

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "full_protocol.py"


def _script():
    spec = importlib.util.spec_from_file_location("full_protocol", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trial(key: str, value: float, state: TrialState = TrialState.COMPLETE,
           **attrs) -> optuna.trial.FrozenTrial:
    return create_trial(params={"lr": 0.01}, distributions={"lr": FloatDistribution(0, 1)},
                        value=value if state == TrialState.COMPLETE else None, state=state,
                        user_attrs={"config_key": key, **attrs})


def test_agreement_counts_only_own_full_budget_trainings_the_grid_also_trained():
    fp = _script()
    scores = {"a": 0.95, "b": 0.90, "failed": None}
    trials = [_trial("a", 0.95), _trial("b", 0.91),               # one agrees, one does not
              _trial("a", 0.95, reused_from=0),                   # a reused result: not a training
              _trial("c", 0.99),                                  # the grid never trained it
              _trial("failed", 0.5),                              # the grid's training failed
              _trial("a", 0.0, state=TrialState.PRUNED)]          # a low-budget rung
    assert fp.agreement(trials, scores) == (1, 2)


def test_the_page_says_whether_the_studies_reproduce_the_grids_scores():
    fp = _script()
    scores = {"a": 0.95, "b": 0.90}
    agree = fp._judged([{"trials": [_trial("a", 0.95), _trial("b", 0.90)]}], scores)
    assert "all 2 of the studies' own full-budget trainings" in agree
    differ = fp._judged([{"trials": [_trial("a", 0.95), _trial("b", 0.91)]}], scores)
    assert "Of the studies' 2 full-budget trainings" in differ and ", 1 score exactly" in differ
    assert "thread count" in differ and "thread count" not in agree


def test_retests_list_each_retested_studys_cv_choice_and_its_one_test_score():
    fp = _script()
    chosen = {"params": {"model": "naive", "lr": 0.01}, "cv_accuracy": 0.949,
              "test_accuracy_mean": 0.959, "test_accuracy_std": 0.0058,
              "test_protocol": {"kind": "test", "folds": 10, "repeats": 10, "draws": 3}}
    lines = fp.retest_lines(["report002-grid", "report002-tpe"],
                            {"report002-tpe": chosen, "report002-grid": None})
    rows = [line for line in lines if line.startswith("| `")]
    assert rows == ["| `report002-tpe` | `report002-tpe-retest` | lr 0.01, model naive | "
                    "94.90 (10-fold) | 95.90 ± 0.58 (10 × 3) |"]
    assert fp.retest_lines(["report002-grid"], {}) == []  # nothing retested: no table
