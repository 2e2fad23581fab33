"""Study queries: what counts as a crashed trial and how long a trial took."""

from __future__ import annotations

import datetime

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from pairsearch.search.store.queries import crashed, trial_seconds

START = datetime.datetime(2026, 11, 30, 12, 0, 0)


def _trial(state: TrialState, seconds: float, **user_attrs) -> optuna.trial.FrozenTrial:
    return optuna.trial.FrozenTrial(
        number=0, state=state, value=0.9 if state == TrialState.COMPLETE else None,
        datetime_start=START, datetime_complete=START + datetime.timedelta(seconds=seconds),
        params={"lr": 0.01}, distributions={"lr": FloatDistribution(1e-4, 1.0)},
        user_attrs=user_attrs, system_attrs={}, intermediate_values={}, trial_id=0)


def test_a_trial_failed_by_its_dead_worker_counts_no_time():
    # a kill leaves the trial RUNNING; a later run fails it minutes or hours later
    killed = _trial(TrialState.FAIL, 3600.0, crashed="worker vm:1 is gone")
    assert crashed(killed) and trial_seconds(killed) == 0.0


def test_trials_that_finished_on_their_own_count_their_duration():
    diverged = _trial(TrialState.FAIL, 2.5, fail_reason="run 1 diverged")
    complete = _trial(TrialState.COMPLETE, 4.0)
    pruned = _trial(TrialState.PRUNED, 1.5)
    assert not any(crashed(t) for t in (diverged, complete, pruned))
    assert [trial_seconds(t) for t in (diverged, complete, pruned)] == [2.5, 4.0, 1.5]
