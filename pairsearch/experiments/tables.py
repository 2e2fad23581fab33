"""The reproduction table: each report row's published figures beside ours.

A stage's ``[stages.reported.ROW]`` tables hold what the report printed for a row:
``mean`` accuracy in % (or ``error`` in %, turned into 100 − error), ``std`` or
``variance`` (%²), ``params``, ``f1``, ``digit_accuracy``, ``seconds``, ``note``, and in a
companion experiment ``beside`` ("STAGE/ROW": the faithful row it improves on, where its
own stage and row are named otherwise), and in an ablation stage ``ablates`` ("STAGE/ROW",
or a list of them: the faithful rows whose gap the ablation tests; see ``gap_summary``), and
``retests`` ("STAGE/ROW": the row whose configuration this row is the report's own second
measurement of, e.g. report 002's 10-fold retest of its 3-fold grid figure).
``metric`` says what the report's figure measures: ``accuracy`` (the default: on held-out
pairs), ``train_accuracy`` (on the pairs each run trained on, for a report that printed
training results) or ``best_replica`` (a CV trial's repeats read as replicas of one cell:
the best repeat's mean over its folds, for a report whose grid trained the same network
once per setting the model ignores and printed the best).
``reproduction_table`` reads the stored studies (it trains nothing) and matches each
row to a trial:

- ``best``: the stage's best trial; ``KEY=VALUE``: the best trial with that setting
  (e.g. ``model=naive``); ``chosen`` (retest stages): the configuration the retest chose;
- anything else: the trial whose cell reads as the row, its values joined by ``/``
  (the variant first, then the other dimensions in alphabetical order), e.g.
  ``model_1_ws`` or ``adam/leaky_relu``.

Verdict: ``within`` when |ours − report| ≤ 2σ, with σ the larger of the two
run-to-run standard deviations (a row's own spread, not the error of its mean),
else ``above`` or ``below``; ``not run`` when the study holds no such trial; ``quick``
when the stored study was run on a smaller budget than the experiment file states
(``--quick``'s smoke runs, or fewer epochs, pairs, folds, repeats or draws by an
override): such a row is not the report's protocol, so it is not judged against the
report (its note says what fell short). The budget is read from what the study stored
(``reduced_budget``), never from how the table was asked for.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from pairsearch.experiments.running import RunOptions, stage_settings, stage_study_name
from pairsearch.experiments.schema import Experiment, Stage, reads_trials_of
from pairsearch.names import Attr
from pairsearch.search.store.queries import best_distinct_trials, trial_seconds, unfinished_cells
from pairsearch.search.store.storage import study_meta

# What a study's budget is made of, as its stored protocol names them (a retest stores its
# test's trainings and draws as ``test_repeats`` and ``test_draws``; a genetic search its
# population as ``pop``). Draws left out of a stored protocol are 1.
BUDGET_KEYS = ("epochs", "train_pairs", "test_pairs", "folds", "repeats", "draws",
               "test_repeats", "test_draws", "pop")
_ONE_UNLESS_STORED = ("draws", "test_draws")

COLUMNS = ["stage", "row", "report_mean", "report_std", "mean", "std", "runs", "draws",
           "params", "report_params", "f1", "report_f1", "digit_acc", "report_digit_acc",
           "seconds", "report_seconds", "verdict", "note", "beside", "ablates", "retests",
           "brackets", "metric", "reduced"]


def row_label(params: dict[str, Any]) -> str:
    """A cell's values joined by ``/``: the variant first, then the rest by name."""
    keys = (["variant"] if "variant" in params else []) + sorted(k for k in params
                                                                 if k != "variant")
    return "/".join(str(params[k]) for k in keys)


def _report_figures(figures: dict[str, Any]) -> tuple[Optional[float], Optional[float]]:
    mean = figures.get("mean")
    if mean is None and figures.get("error") is not None:
        mean = 100.0 - float(figures["error"])
    std = figures.get("std")
    if std is None and figures.get("variance") is not None:
        std = math.sqrt(float(figures["variance"]))
    return (None if mean is None else float(mean)), (None if std is None else float(std))


def _match(study: optuna.Study, stage: Stage, row: str, metric: str = "accuracy"
           ) -> Optional[FrozenTrial]:
    complete = best_distinct_trials(study)
    if metric == "best_replica":
        # The report's grid printed its best copy of any cell, so rank cells by their best
        # replica, not by their mean over replicas.
        complete.sort(key=lambda t: -max(_replica_means(t), default=-1.0))
    if row == "chosen":
        chosen = study.user_attrs.get("chosen") or {}
        return next((t for t in complete if t.number == chosen.get("retest_trial")), None)
    if row == "best":
        return complete[0] if complete else None
    if "=" in row:
        key, _, value = row.partition("=")
        return next((t for t in complete if str(t.params.get(key)) == value), None)
    return next((t for t in complete if row_label(t.params) == row), None)


def compares_faithfully(row: dict[str, Any]) -> bool:
    """Whether a reproduction row is a faithful row (it ablates nothing) that was run beside
    a report figure, so it has a verdict: the rows ``gap_summary`` judges."""
    return not row["ablates"] and row["verdict"] in ("within", "above", "below")


def faithful_key(row: dict[str, Any]) -> tuple[str, str]:
    """(stage, row) of the faithful row a reproduction row stands beside: its ``beside``
    ("STAGE/ROW") where it has one, else its own."""
    if row["beside"]:
        stage, _, name = row["beside"].partition("/")
        return stage, name
    return row["stage"], row["row"]


def verdict(report_mean: Optional[float], report_std: Optional[float], mean: Optional[float],
            std: Optional[float]) -> str:
    """``within`` 2σ, ``above``, ``below`` or ``not run`` (σ: the larger run-to-run std)."""
    if mean is None:
        return "not run"
    if report_mean is None:
        return "no report figure"
    sigma = max(report_std or 0.0, std or 0.0)
    difference = mean - report_mean
    if abs(difference) <= 2 * sigma or (sigma == 0 and abs(difference) < 0.05):
        return "within"
    return "above" if difference > 0 else "below"


def _cells_epochs(stage: Stage) -> Optional[int]:
    """The fewest epochs a stage's own cells set (``fixed``, ``variants`` or ``params``),
    for a stage whose protocol leaves the epochs to its cells; ``None`` if it sets none."""
    values: list[Any] = []
    fixed = stage.get("fixed") or {}
    if "epochs" in fixed:
        values.append(fixed["epochs"])
    values += [v["epochs"] for v in (stage.get("variants") or {}).values()
               if isinstance(v, dict) and "epochs" in v]
    listed = (stage.get("params") or {}).get("epochs")
    values += listed if isinstance(listed, list) else []
    numbers = [int(v) for v in values if isinstance(v, (int, float))]
    return min(numbers) if numbers else None


def stated_budget(stage: Stage) -> dict[str, int]:
    """The budget a stage states (its protocol as the runner would store it; ``BUDGET_KEYS``).

    A stage whose protocol leaves the epochs to its cells states the fewest its own cells
    set (none, for a chained stage that inherits its cells' settings).
    """
    if stage.kind == "retest":
        # As running.run_experiment runs a retest: its ``repeats`` and ``draws`` are the
        # chosen configuration's test (stored as ``test_repeats``, ``test_draws``), its
        # K-fold repeated ``cv_repeats`` times (stored as ``repeats``).
        budget: dict[str, Any] = {
            "folds": stage.get("folds", 10), "repeats": stage.get("cv_repeats", 1),
            "test_repeats": stage.get("repeats", 10), "test_draws": stage.get("draws", 1),
            "epochs": stage.get("epochs"), "train_pairs": stage.get("train_pairs", 1000),
            "test_pairs": stage.get("test_pairs", 1000)}
    else:
        meta = stage_settings(stage, RunOptions()).protocol_meta()
        budget = {key: meta.get(key) for key in ("epochs", "train_pairs", "test_pairs",
                                                 "folds", "repeats")}
        budget["draws"] = meta.get("draws", 1)
        if stage.kind == "genetic":
            budget["pop"] = stage.get("pop")
    if budget["epochs"] is None:
        budget["epochs"] = _cells_epochs(stage)
    return {key: int(value) for key, value in budget.items() if value is not None}


def reduced_budget(stated: dict[str, int], protocol: dict[str, Any]) -> list[str]:
    """Where a stored study's protocol falls short of the budget its stage states: one
    ``"KEY STORED < STATED"`` per key (empty: the study ran the stated budget or more).

    Args:
        stated: ``stated_budget`` of the stage as the experiment file states it.
        protocol: The study's stored protocol (``study_meta(study)["protocol"]``).
    """
    short = []
    for key, value in stated.items():
        stored = protocol.get(key, 1 if key in _ONE_UNLESS_STORED else None)
        if isinstance(stored, (int, float)) and stored < value:
            short.append(f"{key} {stored:g} < {value}")
    return short


def reproduction_rows(experiment: Experiment, storage: optuna.storages.BaseStorage,
                      stated: Optional[Experiment] = None) -> list[dict[str, Any]]:
    """One dictionary per reported row of every stage (``COLUMNS``).

    Args:
        experiment: The experiment whose studies are read (its name is their prefix).
        storage: Where they are stored.
        stated: The experiment as its file states it, without ``--quick`` or overrides
            (default: ``experiment``): each stored study's protocol is held against its
            stage's stated budget, and a row whose study ran less has verdict ``quick``.
    """
    names = {s.study_name for s in storage.get_all_studies()}
    stated_stages = {s.name: s for s in (stated or experiment).stages}
    rows = []
    for stage in experiment.stages:
        reported = stage.get("reported") or {}
        if not reported:
            continue
        name = stage_study_name(experiment, stage)
        study = optuna.load_study(study_name=name, storage=storage) if name in names else None
        # The draws the stored study was run with (an override may differ from the file's).
        protocol = study_meta(study).get("protocol", {}) if study is not None else {}
        draws = int(protocol.get("draws", 1))
        partial = unfinished_cells(study) if study is not None else None
        partial_note = (f"partial: {partial[0]:,} of {partial[1]:,} cells so far"
                        if partial else "")
        # A stage that reads another's trials states that stage's budget.
        budget_of = reads_trials_of(stage) or stage.name
        short = (reduced_budget(stated_budget(stated_stages[budget_of]), protocol)
                 if study is not None and budget_of in stated_stages else [])
        quick_note = (f"quick: a smoke run, not the report's protocol ({', '.join(short)}); "
                      "no verdict" if short else "")
        for row, figures in reported.items():
            report_mean, report_std = _report_figures(figures)
            metric = figures.get("metric", "accuracy")
            trial = _match(study, stage, row, metric) if study is not None else None
            ours = {} if trial is None else _ours(trial, stage, metric,
                                                  draws if stage.kind == "test" else 1)
            judged = verdict(report_mean, report_std, ours.get("mean"), ours.get("std"))
            rows.append({
                "stage": stage.name, "row": row, "report_mean": report_mean,
                "report_std": report_std, "mean": ours.get("mean"), "std": ours.get("std"),
                "runs": ours.get("runs"), "draws": ours.get("draws"),
                "params": ours.get("params"), "report_params": figures.get("params"),
                "f1": ours.get("f1"), "report_f1": figures.get("f1"),
                "digit_acc": ours.get("digit_acc"),
                "report_digit_acc": figures.get("digit_accuracy"),
                "seconds": ours.get("seconds"), "report_seconds": figures.get("seconds"),
                "verdict": "quick" if short and ours.get("mean") is not None else judged,
                # A companion's row: the faithful "STAGE/ROW" it stands beside, if not its own.
                "beside": figures.get("beside"),
                "ablates": ([figures["ablates"]] if isinstance(figures.get("ablates"), str)
                            else list(figures.get("ablates", []))),
                "retests": figures.get("retests"),
                # false: a reading of a two-way choice with nothing between it and the
                # faithful one; landing on the report's other side brackets nothing.
                "brackets": figures.get("brackets", True),
                "metric": metric,
                "reduced": short,  # where the study's budget fell short of the stated one
                "note": "; ".join(n for n in (
                    quick_note, _METRIC_NOTES.get(metric, ""), partial_note,
                    figures.get("note", "")) if n)})
    return rows


_METRIC_NOTES = {"train_accuracy": "train accuracy",
                 "best_replica": "the best of the trial's repeats (replicas)"}


def _spread(percentages: np.ndarray) -> tuple[float, float]:
    """Mean and sample std (0 for one value) of accuracies in %."""
    std = float(np.std(percentages, ddof=1)) if len(percentages) > 1 else 0.0
    return float(np.mean(percentages)), std


def _replicas(trial: FrozenTrial) -> Optional[np.ndarray]:
    """A CV trial's accuracies in %, one row per repeat (repeat-major, as the evaluator
    orders its runs); ``None`` when they do not divide into its folds."""
    accuracies = 100 * np.asarray(trial.user_attrs.get(Attr.ACCURACIES) or [], dtype=float)
    folds = int((trial.user_attrs.get("protocol") or {}).get("folds", 1))
    if len(accuracies) == 0 or len(accuracies) % folds:
        return None
    return accuracies.reshape(-1, folds)


def _replica_means(trial: FrozenTrial) -> list[float]:
    replicas = _replicas(trial)
    means = [] if replicas is None else replicas.mean(axis=1)
    return [float(m) for m in means if not np.isnan(m)]


def _ours(trial: FrozenTrial, stage: Stage, metric: str, draws: int) -> dict[str, Any]:
    """Our side of a row from its trial, as ``metric`` reads the report's figure:

    - ``accuracy``: a search's value (mean CV accuracy) and stored std, or a test stage's
      mean ± std over its runs;
    - ``train_accuracy``: each run's accuracy on its own training pairs (none for a trial
      stored before those were recorded: the row reads ``not run``);
    - ``best_replica``: a CV trial's per-repeat means (repeat-major, as the evaluator
      orders its runs), the best of them and the std over its folds.
    """
    attrs = trial.user_attrs
    accuracies = 100 * np.asarray(attrs.get(Attr.ACCURACIES) or [], dtype=float)
    ours: dict[str, Any] = {"runs": len(accuracies), "draws": draws,
                            "params": attrs.get("params"), "seconds": attrs.get("train_seconds")}
    if metric == "train_accuracy":
        fitted = [v for v in attrs.get("train_accuracies") or [] if v is not None]
        if not fitted:
            return {}
        ours["mean"], ours["std"] = _spread(100 * np.asarray(fitted))
        return {**ours, "runs": len(fitted)}
    if metric == "best_replica":
        replicas = _replicas(trial)
        if replicas is None:
            return {}
        ours["mean"], ours["std"] = _spread(replicas[int(np.argmax(replicas.mean(axis=1)))])
        return ours
    if stage.kind == "test":
        ours["mean"], ours["std"] = _spread(accuracies if len(accuracies) else
                                            np.asarray([np.nan]))
    else:  # a search or a retest: the trial's value and its stored std
        std = attrs.get("accuracy_std")
        ours["mean"], ours["std"] = 100 * trial.value, None if std is None else 100 * std
    ours["f1"] = None if attrs.get("f1_mean") is None else 100 * attrs["f1_mean"]
    ours["digit_acc"] = (None if attrs.get("digit_accuracy_mean") is None
                         else 100 * attrs["digit_accuracy_mean"])
    return ours


def gap_summary(rows: list[dict[str, Any]], companion_rows: list[dict[str, Any]] = ()
                ) -> list[dict[str, Any]]:
    """Each faithful row outside 2σ and what its ablations found, from measured verdicts.

    A faithful row is a row that ablates nothing. Only readings of the report may explain
    its gap: its evidence is every ablation row of the faithful experiment that names it
    (``ablates``: another reading of the report's text, of its counts, of its stated
    protocol, or an unstated setting varied both ways) and the rows that retest it
    (``retests``: the report's own second figure for the same configuration). The
    companion experiments' rows beside it (``companion_of``: our improved variants) show
    what our choices do and explain nothing about the report: they stay in their own
    column (``companions``) and never change a status, wherever they land. An ablation
    counts (``counts``) only if it was run and its 2σ band is narrower than the gap it
    would explain (an ablation with a std of 16 points is "within" of anything).
    Status: ``within`` when a counted ablation lands within 2σ of the report,
    ``bracketed`` when one lands on the other side of the report (the report lies between
    two readings of an unstated choice) and may bracket (``brackets``, false for a reading
    of a two-way choice with nothing between the two: which pairs a column scores),
    ``contradicted`` when none does but the report's
    own retest of the configuration, reproduced, is within 2σ of its figure and lies
    from this row's report figure towards ours, by more than that retest's 2σ band (the
    report's two figures for one configuration disagree, and ours agrees with its
    retest), else ``unexplained``.

    Args:
        rows: An experiment's ``reproduction_rows``.
        companion_rows: Its companions' rows (improved variants), each with an
            ``experiment`` key: listed beside each gap, never evidence.

    Returns:
        One dictionary per gap: ``stage``, ``row``, ``verdict``, ``report_mean``, ``mean``,
        ``status``, ``evidence`` (the readings that were run, each with ``source``, its
        stage, ``counts`` and ``retest``) and ``companions`` (the companion rows beside it
        that were run, each with ``source``, the companion experiment's name; no
        ``counts``: they do not bear on the status).
    """
    evidence: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        for target in row["ablates"]:
            evidence.setdefault(target, []).append({**row, "source": row["stage"],
                                                    "retest": False})
        if row.get("retests"):
            evidence.setdefault(row["retests"], []).append({**row, "source": row["stage"],
                                                            "retest": True})
    companions: dict[str, list[dict[str, Any]]] = {}
    for row in companion_rows:  # their own column: never evidence
        target = "/".join(faithful_key(row))
        companions.setdefault(target, []).append({**row, "source": row["experiment"]})
    gaps = []
    for row in rows:
        if not compares_faithfully(row) or row["verdict"] == "within":
            continue
        gap = abs(row["mean"] - row["report_mean"])
        found = [{**e, "counts": _counts(e, row, gap)}
                 for e in evidence.get(f"{row['stage']}/{row['row']}", [])
                 if e["verdict"] in ("within", "above", "below")]
        counted = [e for e in found if e["counts"] and not e["retest"]]
        if any(e["verdict"] == "within" for e in counted):
            status = "within"
        elif any(e["verdict"] != row["verdict"] and e.get("brackets", True)
                 for e in counted):
            status = "bracketed"
        elif any(e["retest"] and e["counts"] for e in found):
            status = "contradicted"
        else:
            status = "unexplained"
        beside = [c for c in companions.get(f"{row['stage']}/{row['row']}", [])
                  if c["verdict"] in ("within", "above", "below")]
        gaps.append({"stage": row["stage"], "row": row["row"], "verdict": row["verdict"],
                     "report_mean": row["report_mean"], "mean": row["mean"], "status": status,
                     "evidence": found, "companions": beside})
    return gaps


def _band(row: dict[str, Any]) -> float:
    """The width of a row's 2σ band (σ the larger of its two run-to-run stds)."""
    return 2 * max(row["std"] or 0.0, row["report_std"] or 0.0)


def _counts(evidence: dict[str, Any], row: dict[str, Any], gap: float) -> bool:
    """Whether a row of evidence bears on a gap: an ablation when its 2σ band is narrower
    than the gap; a report's retest when ours reproduces it and the report's second figure
    moved from its first towards ours by more than that band (else the two report figures
    are one spread apart)."""
    if not evidence["retest"]:
        return _band(evidence) < gap
    side = 1 if row["mean"] > row["report_mean"] else -1
    moved = (evidence["report_mean"] - row["report_mean"]) * side
    return evidence["verdict"] == "within" and moved > _band(evidence)


def evidence_note(evidence: dict[str, Any]) -> str:
    """What a row of ``gap_summary``'s evidence is, where not a counted ablation: "" or
    ", too noisy to count", ", the report's retest" (", not counted"), ", a two-way
    choice: brackets nothing"."""
    if evidence["retest"]:
        return ", the report's retest" + ("" if evidence["counts"] else ", not counted")
    if not evidence["counts"]:
        return ", too noisy to count"
    if not evidence.get("brackets", True) and evidence["verdict"] != "within":
        return ", a two-way choice: brackets nothing"
    return ""


def format_figure(mean: Optional[float], std: Optional[float]) -> str:
    """A figure as the reproduction tables show it: ``98.20 ± 0.34``, or ``–``."""
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "–"
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _count(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def reproduction_table(rows: list[dict[str, Any]],
                       improved: Optional[dict[tuple[str, str], dict[str, Any]]] = None
                       ) -> pd.DataFrame:
    """``reproduction_rows`` as people read them, the one rendering of the reproduction
    table: ``pairsearch run NAME --table`` prints it as text, docs/reproduction.md
    (benchmarks/reproduction.py) as Markdown.

    Args:
        rows: ``reproduction_rows``.
        improved: The improved companion's rows by the (stage, row) they stand beside
            (``faithful_key``): adds their figure beside each faithful row (``None``: no
            such column).

    Returns:
        One row per reproduction row: stage, row, the report's figure, ours as written,
        runs × draws, verdict, (ours improved), parameters, (digit accuracies, where the
        report gives them), note.
    """
    digits = any(row["report_digit_acc"] is not None for row in rows)
    table = []
    for row in rows:
        draws = max(row["draws"] or 1, 1)
        shown = {"stage": row["stage"], "row": row["row"],
                 "report": format_figure(row["report_mean"], row["report_std"]),
                 "ours, as written": format_figure(row["mean"], row["std"]),
                 "runs × draws": "–" if row["runs"] is None else
                 f"{row['runs'] // draws} × {draws}",
                 "verdict": row["verdict"]}
        if improved is not None:
            other = improved.get((row["stage"], row["row"]))
            shown["ours, improved"] = format_figure(other["mean"], other["std"]) if other else "–"
        shown["parameters (ours / report)"] = \
            f"{_count(row['params'])} / {_count(row['report_params'])}"
        if digits:
            shown["digit accuracy (ours / report)"] = \
                f"{format_figure(row['digit_acc'], None)} / {format_figure(row['report_digit_acc'], None)}"
        shown["note"] = row["note"]
        table.append(shown)
    return pd.DataFrame(table)


def experiment_times(experiment: Experiment, storage: optuna.storages.BaseStorage
                     ) -> dict[str, Any]:
    """Seconds in the experiment's trials (Σ trial durations; a crashed trial's counts 0)
    and the devices used."""
    names = {s.study_name for s in storage.get_all_studies()}
    seconds, devices = 0.0, set()
    # Each study once: a stage that reads another's trials shares that stage's study.
    for name in dict.fromkeys(stage_study_name(experiment, s) for s in experiment.stages):
        if name not in names:
            continue
        for trial in optuna.load_study(study_name=name, storage=storage).get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)):
            seconds += trial_seconds(trial)
            if trial.user_attrs.get("device"):
                devices.add(f"{trial.user_attrs['device']} ({trial.user_attrs.get('precision')})")
    return {"seconds": seconds, "devices": sorted(devices)}
