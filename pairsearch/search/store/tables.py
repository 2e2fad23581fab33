"""Reading studies back as tables: a study's best trials, and the list of studies."""

from __future__ import annotations

from typing import Optional

import optuna
import pandas as pd
from optuna.trial import TrialState

from pairsearch.names import Attr
from pairsearch.search.store.queries import best_distinct_trials, best_value, state_counts
from pairsearch.search.store.storage import study_meta

# User attributes shown in tables, and their column names.
_TABLE_ATTRS = {Attr.ACCURACY_STD: "std", "f1_mean": "f1", "digit_accuracy_mean": "digit_acc",
                "final_loss_mean": "loss", "params": "params", "train_seconds": "seconds",
                Attr.RUNG: Attr.RUNG, Attr.BUDGET: "epochs", Attr.GENERATION: "generation",
                Attr.FITNESS: "fitness", Attr.SOURCE_TRIAL: "source_trial",
                Attr.SEARCH_VALUE: "search_acc"}


def best_trials_table(study: optuna.Study, top: Optional[int] = None,
                      distinct: bool = True) -> pd.DataFrame:
    """Completed trials, best first: number, value, params and the main scores.

    With ``distinct``, each configuration appears once (trials that reused a stored
    result, and GA survivors, are left out).
    """
    if distinct:
        trials = best_distinct_trials(study, top)
    else:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        trials = sorted(complete, key=lambda t: (-t.value, t.number))[:top]
    rows = []
    for trial in trials:
        row = {"number": trial.number, "value": trial.value, **trial.params}
        for attr, column in _TABLE_ATTRS.items():
            if attr in trial.user_attrs:
                row[column] = trial.user_attrs[attr]
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in ("params", "generation", _TABLE_ATTRS[Attr.RUNG], "epochs", "source_trial"):
        if column in table:  # whole numbers, with gaps where a trial lacks them
            table[column] = table[column].round().astype("Int64")
    return table


def studies_table(storage: optuna.storages.BaseStorage) -> pd.DataFrame:
    """One row per study: name, strategy, trials by state, best value."""
    rows = []
    for name in [s.study_name for s in storage.get_all_studies()]:  # in creation order
        study = optuna.load_study(study_name=name, storage=storage)
        counts = state_counts(study)
        rows.append({"study": name, "strategy": study_meta(study).get("strategy", "-"),
                     "complete": counts["complete"], "failed": counts["failed"],
                     "pruned": counts["pruned"], "running": counts["running"],
                     "best": best_value(study)})
    return pd.DataFrame(rows, columns=["study", "strategy", "complete", "failed", "pruned",
                                       "running", "best"])
