"""Reading studies back: tables of the best trials, the list of studies, and retests.

``retest`` is report 002's second stage: the best configurations of a search
re-run with K=10 cross-validation and with the test protocol, stored in the
study ``NAME-retest`` of the same storage (value = mean test accuracy).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Optional

import optuna
import pandas as pd
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.evaluation import Protocol, evaluate
from pairsearch.search.runner import Runner, SearchSettings, distributions
from pairsearch.search.space import space_from_dict
from pairsearch.search.storage import load_existing, open_study, study_meta
from pairsearch.search.workers import enqueue_owned

_TABLE_ATTRS = {"user_attrs_accuracy_std": "std", "user_attrs_f1_mean": "f1",
                "user_attrs_digit_accuracy_mean": "digit_acc",
                "user_attrs_final_loss_mean": "loss", "user_attrs_params": "params",
                "user_attrs_train_seconds": "seconds", "user_attrs_reused_from": "reused_from",
                "user_attrs_generation": "generation", "user_attrs_fitness": "fitness",
                # retest studies (value = mean test accuracy)
                "user_attrs_search_value": "search_acc", "user_attrs_cv_accuracy_mean": "cv_acc",
                "user_attrs_cv_accuracy_std": "cv_std", "user_attrs_test_accuracy_std": "test_std"}


def best_trials_table(study: optuna.Study, top: Optional[int] = None,
                      distinct: bool = True) -> pd.DataFrame:
    """Completed trials, best first: number, value, params and the main scores.

    With ``distinct``, each configuration appears once (trials that reused a stored
    result, and GA survivors, are left out).
    """
    frame = study.trials_dataframe()
    if frame.empty:
        return frame
    frame = frame[frame["state"] == "COMPLETE"]
    if distinct and "user_attrs_config_key" in frame.columns:
        if "user_attrs_reused_from" in frame.columns:
            frame = frame[frame["user_attrs_reused_from"].isna()]
        frame = frame.drop_duplicates("user_attrs_config_key")
        frame = frame.drop(columns=[c for c in ("user_attrs_reused_from",) if c in frame])
    params = [c for c in frame.columns if c.startswith("params_")]
    attrs = [c for c in _TABLE_ATTRS if c in frame.columns]
    table = frame[["number", "value", *params, *attrs]].rename(
        columns={**{c: c[len("params_"):] for c in params}, **_TABLE_ATTRS})
    # Failed trials made these columns float (NaN); the kept rows are whole numbers.
    for column in ("params", "generation"):
        if column in table:
            table[column] = table[column].round().astype("Int64")
    table = table.sort_values(["value", "number"], ascending=[False, True])
    return table.head(top) if top else table


def studies_table(storage: optuna.storages.BaseStorage) -> pd.DataFrame:
    """One row per study: name, strategy, trials by state, best value."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=True):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        rows.append({
            "study": summary.study_name,
            "strategy": study_meta(study).get("strategy", "-"),
            "complete": states.count(TrialState.COMPLETE),
            "failed": states.count(TrialState.FAIL),
            "pruned": states.count(TrialState.PRUNED),
            "running": states.count(TrialState.RUNNING),
            "best": summary.best_trial.value if summary.best_trial else None,
        })
    return pd.DataFrame(rows, columns=["study", "strategy", "complete", "failed", "pruned",
                                       "running", "best"])


def retest(storage: optuna.storages.BaseStorage, study_name: str, top: int, folds: int = 10,
           repeats: int = 10, device: str = "auto", precision: str = "auto") -> pd.DataFrame:
    """Re-run the ``top`` best distinct configurations with K-fold CV and the test protocol.

    Args:
        storage: Where the study lives.
        study_name: The searched study.
        top: How many distinct configurations to retest.
        folds: K of the retest's cross-validation.
        repeats: Trainings of the test protocol.
        device: Where to train.
        precision: ``auto``, ``fp32`` or ``bf16`` (``evaluation.precision``).

    Returns:
        One row per configuration: search accuracy, K-fold accuracy, test accuracy.

    Raises:
        PairsearchError: If the study is missing, not a pairsearch search, or empty.
    """
    study = load_existing(storage, study_name)
    meta = study_meta(study)
    if "space" not in meta:
        raise PairsearchError(f"study {study_name!r} is not a pairsearch search study")
    if top < 1:
        raise PairsearchError(f"bad value {top} for --top: needs at least 1")
    space = space_from_dict(study_name, json.loads(meta["space"]))
    protocol = meta["protocol"]
    settings = SearchSettings(folds=folds, epochs=protocol.get("epochs"), seed=protocol["seed"],
                              data=protocol["data"], device=device, precision=precision,
                              train_pairs=protocol["train_pairs"],
                              test_pairs=protocol["test_pairs"])
    best: list[optuna.trial.FrozenTrial] = []
    seen = set()
    for trial in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                        key=lambda t: (-t.value, t.number)):
        key = trial.user_attrs.get("config_key")
        if key not in seen:
            seen.add(key)
            best.append(trial)
        if len(best) == top:
            break
    if not best:
        raise PairsearchError(f"study {study_name!r} has no complete trial to retest")

    target = open_study(storage, f"{study_name}-retest",
                        {"strategy": "retest", "space": meta["space"],
                         "protocol": {**settings.protocol_meta(), "test_repeats": repeats}})
    runner = Runner(space, replace(settings), target)
    dists = distributions(space)
    done = {t.user_attrs.get("source_trial"): t
            for t in target.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    rows = []
    for source in best:
        if source.number in done:
            stored = done[source.number]
        else:
            cell = dict(source.params)
            config = runner.config(cell)
            cv = evaluate(config, runner.data, Protocol("cv", folds), settings.seed,
                          runner.device, precision=runner.precision)
            test = evaluate(config, runner.data, Protocol("test", repeats=repeats),
                            settings.seed, runner.device, precision=runner.precision)
            enqueue_owned(target, cell)
            trial = target.ask(dists)
            attrs = {"source_trial": source.number, "search_value": source.value,
                     "cv_accuracy_mean": cv.accuracy_mean if not cv.failed else None,
                     "cv_accuracy_std": cv.accuracy_std if not cv.failed else None,
                     "test_accuracies": test.accuracies,
                     "test_accuracy_std": test.accuracy_std if not test.failed else None,
                     "config_key": config.key(), "device": str(runner.device),
                     "precision": runner.precision}
            for name, value in attrs.items():
                trial.set_user_attr(name, value)
            if cv.failed or test.failed:
                trial.set_user_attr("fail_reason", cv.failed or test.failed)
                target.tell(trial, state=TrialState.FAIL)
                continue
            target.tell(trial, test.accuracy_mean)
            stored = next(t for t in target.get_trials(deepcopy=False)
                          if t.number == trial.number)
        rows.append({"trial": source.number, **source.params,
                     "search_acc": source.value,
                     f"cv{folds}_acc": stored.user_attrs["cv_accuracy_mean"],
                     f"cv{folds}_std": stored.user_attrs["cv_accuracy_std"],
                     "test_acc": stored.value,
                     "test_std": stored.user_attrs["test_accuracy_std"]})
    return pd.DataFrame(rows)
