"""Report 002's second stage: the best configurations of a search, measured again.

The ``top`` best distinct configurations of a study are re-run with K-fold CV
(K = 10 by default) on the training pairs, into the study ``NAME-retest`` (value =
mean K-fold accuracy). The configuration with the best K-fold accuracy is the one
chosen; only it is then trained on all training pairs and scored on the test pairs
(``repeats`` trainings on each of ``draws`` draws of the pairs), once. The test pairs
never choose: the other configurations are never scored on them. The chosen
configuration and its test scores are stored as the retest study's ``chosen``
attribute.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Optional, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from pairsearch.errors import BadValue, PairsearchError
from pairsearch.names import Attr
from pairsearch.search.compare import ALPHA, PairedTest, against_best
from pairsearch.search.driver import drive
from pairsearch.search.space import SearchSpace, space_from_dict
from pairsearch.search.store.queries import (
    best_distinct_trials,
    best_trial,
    retest_study_name,
    run_accuracies,
)
from pairsearch.search.store.storage import load_existing, study_meta
from pairsearch.search.strategies.base import Strategy, Wait, wait_for_others
from pairsearch.search.trial_evaluator import TrialEvaluator
from pairsearch.search.types import Proposal, SearchSettings
from pairsearch.search.workers import NEVER, StopRequest


class RetestStrategy(Strategy):
    """Proposes the best distinct configurations of a source study not retested yet.

    Args:
        source: The searched study.
        top: How many distinct configurations to retest.
        test_repeats: Trainings of the chosen configuration on each draw, scored on the
            test pairs.
        test_draws: Draws of the pairs for the chosen configuration's test.
        per_architecture: At most this many candidates of one family (or model).
    """

    name = "retest"

    def __init__(self, source: optuna.Study, top: int, test_repeats: int,
                 test_draws: int, per_architecture: Optional[int] = None) -> None:
        self.source = source
        self.best = best_distinct_trials(source, top, per_architecture=per_architecture)
        if not self.best:
            raise PairsearchError(f"study {source.study_name!r} has no complete trial to "
                                  "retest")
        self.test_repeats = test_repeats
        self.test_draws = test_draws

    def meta(self, space: SearchSpace, settings: SearchSettings) -> dict:
        protocol: dict[str, Any] = {**settings.protocol_meta(), "test_repeats": self.test_repeats}
        if self.test_draws != 1:
            protocol["test_draws"] = self.test_draws
        return {"strategy": self.name, "space": study_meta(self.source)["space"],
                "protocol": protocol}

    def _done(self, study: optuna.Study) -> set[int]:
        return {t.user_attrs.get(Attr.SOURCE_TRIAL) for t in study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))}

    def propose(self, study: optuna.Study) -> Sequence[Proposal] | Wait | None:
        done = self._done(study)
        todo = [t for t in self.best if t.number not in done]
        if not todo:  # the choice must not read an unfinished study
            return wait_for_others(study)
        return [Proposal(dict(t.params), {Attr.SOURCE_TRIAL: t.number,
                                          Attr.SEARCH_VALUE: t.value},
                         claim=True, label=f"source trial {t.number}") for t in todo]

    def adopt(self, trial: optuna.Trial, proposal: Proposal) -> Proposal:
        number = trial.user_attrs[Attr.SOURCE_TRIAL]
        return Proposal(dict(trial.params), {Attr.SOURCE_TRIAL: number,
                                             Attr.SEARCH_VALUE: trial.user_attrs[
                                                 Attr.SEARCH_VALUE]},
                        claim=True, label=f"source trial {number}")

    def progress(self, study: optuna.Study) -> tuple[int, int]:
        done = self._done(study)
        return len(self.best), sum(t.number in done for t in self.best)


def source_settings(source: optuna.Study, folds: int, device: str = "auto",
                    precision: str = "auto", draws: int = 1) -> tuple[SearchSpace, SearchSettings]:
    """The space and the protocol of a searched study, with K-fold ``folds``.

    Raises:
        PairsearchError: If the study is not a pairsearch search study.
    """
    meta = study_meta(source)
    if "space" not in meta:
        raise PairsearchError(f"study {source.study_name!r} is not a pairsearch search study")
    space = space_from_dict(source.study_name, json.loads(meta["space"]))
    protocol = meta["protocol"]
    settings = SearchSettings(folds=folds, epochs=protocol.get("epochs"), seed=protocol["seed"],
                              data=protocol["data"], device=device, precision=precision,
                              train_pairs=protocol["train_pairs"],
                              test_pairs=protocol["test_pairs"],
                              inputs=protocol.get("inputs", "standardised"))
    return space, settings


def retest(storage: optuna.storages.BaseStorage, study_name: str, top: int, folds: int = 10,
           repeats: int = 10, device: str = "auto", precision: str = "auto", draws: int = 1,
           progress: bool = False, stop: StopRequest = NEVER,
           cv_repeats: int = 1, per_architecture: Optional[int] = None) -> pd.DataFrame:
    """Retest the ``top`` best configurations of a study; test the one K-fold CV chooses.

    Every candidate is scored on the same folds (``cv_repeats`` × K), so their per-fold
    accuracies pair up: the table says which are statistically indistinguishable from
    the chosen one (``compare.against_best``).

    Args:
        storage: Where the study lives.
        study_name: The searched study.
        top: How many distinct configurations to retest.
        folds: K of the retest's cross-validation (the choice).
        repeats: Trainings of the chosen configuration per draw, scored on the test pairs.
        device: Where to train.
        precision: ``auto``, ``fp32`` or ``bf16`` (``evaluation.precision``).
        draws: Draws of the pairs for the chosen configuration's test.
        progress: Show a progress bar.
        stop: Checked between trials.
        cv_repeats: Repeats of the K-fold (each with its own split), the same for every
            candidate.
        per_architecture: At most this many candidates of one family or model: with 1,
            the best configuration of each of the ``top`` best architectures, so that the
            repeated CV compares architectures rather than near-copies of the first
            (whose 3-fold differences are mostly noise).

    Returns:
        One row per configuration: search accuracy, K-fold accuracy, and the test accuracy
        of the chosen one.

    Raises:
        PairsearchError: If the study is missing, not a pairsearch search, or empty, or a
            value is out of range.
    """
    if top < 1:
        raise BadValue("top", top, "needs at least 1")
    if folds < 2:
        raise BadValue("folds", folds, "K-fold needs K >= 2")
    if repeats < 1:
        raise BadValue("repeats", repeats, "needs at least 1")
    if cv_repeats < 1:
        raise BadValue("cv_repeats", cv_repeats, "needs at least 1")
    if per_architecture is not None and per_architecture < 1:
        raise BadValue("per_architecture", per_architecture, "needs at least 1")
    source = load_existing(storage, study_name)
    space, settings = source_settings(source, folds, device, precision)
    settings = replace(settings, repeats=cv_repeats)
    strategy = RetestStrategy(source, top, repeats, draws, per_architecture)
    target_name = retest_study_name(study_name)
    drive(strategy, space, settings, storage, target_name, progress, stop, batching="off")
    target = optuna.load_study(study_name=target_name, storage=storage)
    if not stop.requested:
        score_chosen(target, space, replace(settings, kind="test", repeats=repeats, draws=draws))
    return retest_table(target, folds)


def score_chosen(target: optuna.Study, space: SearchSpace, settings: SearchSettings) -> None:
    """Score the retest's chosen configuration on the test pairs, once (kept if done)."""
    chosen = best_trial(target)
    if chosen is None:
        return
    stored = target.user_attrs.get("chosen") or {}
    if stored.get("retest_trial") == chosen.number:
        return
    report = TrialEvaluator(space, settings).measure(dict(chosen.params)).to_dict()
    target.set_user_attr("chosen", {
        "retest_trial": chosen.number, "source_trial": chosen.user_attrs.get(Attr.SOURCE_TRIAL),
        "params": dict(chosen.params), "cv_accuracy": chosen.value,
        "test_accuracy_mean": report["accuracy_mean"],
        "test_accuracy_std": report["accuracy_std"],
        Attr.TEST_ACCURACIES: report[Attr.ACCURACIES], "test_draw_means": report["draw_means"],
        "test_f1_mean": report["f1_mean"],
        "test_digit_accuracy_mean": report["digit_accuracy_mean"],
        "test_protocol": report["protocol"], "failed": report["failed"],
        "device": report["device"], "precision": report["precision"],
        "train_seconds": report["train_seconds"]})


def retest_table(target: optuna.Study, folds: Optional[int] = None) -> pd.DataFrame:
    """One row per retested configuration, best K-fold accuracy first; the chosen one has its
    test scores.

    ``diff`` and ``p`` compare each with the best by the corrected resampled t-test on
    their paired fold scores (``compare``); ``tied`` marks those it cannot tell from the
    best (p >= 0.05). Trials whose fold scores do not pair up (an older retest) get none.
    """
    chosen = target.user_attrs.get("chosen") or {}
    folds = folds or study_meta(target).get("protocol", {}).get("folds")
    trials = sorted(target.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                    key=lambda t: (-t.value, t.number))
    tests = _paired_tests(trials, folds)
    rows = []
    for trial in trials:
        is_chosen = chosen.get("retest_trial") == trial.number
        test = tests.get(trial.number)
        rows.append({"trial": trial.user_attrs.get(Attr.SOURCE_TRIAL), **trial.params,
                     "search_acc": trial.user_attrs.get(Attr.SEARCH_VALUE),
                     f"cv{folds}_acc": trial.value,
                     f"cv{folds}_std": trial.user_attrs.get(Attr.ACCURACY_STD),
                     "folds": len(run_accuracies(trial)),
                     "diff": test.difference if test else np.nan,
                     "p": test.p if test else np.nan,
                     "tied": ("yes" if test.p >= ALPHA else "no") if test else "",
                     "chosen": "yes" if is_chosen else "",
                     "test_acc": chosen.get("test_accuracy_mean") if is_chosen else np.nan,
                     "test_std": chosen.get("test_accuracy_std") if is_chosen else np.nan})
    return _options_column(pd.DataFrame(rows))


def _options_column(table: pd.DataFrame) -> pd.DataFrame:
    """A conditional space's ``FAMILY.OPTION`` columns (each empty but in its family's rows)
    as one ``options`` column beside the family."""
    own = [c for c in table.columns if "." in str(c)]
    if not own:
        return table
    options = [", ".join(f"{c.split('.', 1)[1]}={row[c]}" for c in own if pd.notna(row[c]))
               for _, row in table.iterrows()]
    table = table.drop(columns=own)
    table.insert(2, "options", options)
    return table


def _paired_tests(trials: Sequence[optuna.trial.FrozenTrial],
                  folds: Optional[int]) -> dict[int, PairedTest]:
    """Each trial against the best, where all share one number of fold scores."""
    scores = {t.number: run_accuracies(t) for t in trials}
    lengths = {len(v) for v in scores.values()}
    if not folds or len(lengths) != 1 or min(lengths) < 2:
        return {}
    return against_best(scores, int(folds))
