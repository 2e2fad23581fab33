"""Optuna storage: studies remember their settings, values have a name, Optuna's version."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from pairsearch.errors import PairsearchError
from pairsearch.search.store.storage import (
    OPTUNA_TESTED_MAJOR,
    open_storage,
    open_study,
    study_storage,
    trial_id,
)
from pairsearch.toml_files import tomllib

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_optuna_is_capped_below_the_next_untested_major_version():
    """``study_storage`` reads ``Study._storage``: the project caps Optuna at the major
    version it was tested with, and the installed one still has the attribute."""
    requirement = next(r for r in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
                       if r.startswith("optuna>"))
    assert f"<{OPTUNA_TESTED_MAJOR + 1}" in requirement, requirement
    assert int(optuna.__version__.split(".")[0]) <= OPTUNA_TESTED_MAJOR
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    assert study_storage(study) is storage


def test_a_study_names_its_value_and_keeps_its_settings(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = open_study(storage, "s", {"strategy": "grid", "protocol": {"folds": 3}})
    assert study.metric_names == ["cv_accuracy"]
    trial = study.ask()
    study.tell(trial, 0.5)
    frame = study.trials_dataframe()
    assert list(frame["value_cv_accuracy"]) == [0.5]  # the dashboard's and pandas' name
    assert storage.get_trial(trial_id(storage, study, trial.number)).value == 0.5
    with pytest.raises(PairsearchError, match=re.escape("different protocol (folds 3 stored, 5 now)")):
        open_study(storage, "s", {"strategy": "grid", "protocol": {"folds": 5}})
