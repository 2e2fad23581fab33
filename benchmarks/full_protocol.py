"""Report 002's searches at its full protocol, side by side, from the stored studies.

Usage:
    python benchmarks/full_protocol.py --storage sqlite:///bench/experiments.db
        [--studies NAME,...] [--reference report002-grid] [--out docs/full_protocol.md]

Trains nothing. The studies are runs of ``pairsearch grid --halving``, ``genetic`` and
``tpe`` on report 002's space with the same data, folds and seed (3-fold CV, 25 epochs,
1000 pairs). A configuration scores the same in each of them only where they ran with the
same number of torch threads (docs/scaling.md), so once the exhaustive grid is complete
each study's choice is judged by the grid's own score of that configuration, one set of
measurements, and its rank in the grid. For each study: trials, trainings (reused results not
counted), time in trials (the sum of the trials' durations as Optuna stored them), active
wall time (first start to last finish, less any pause over a minute between trials, e.g.
a kill and resume), and its best full-budget configuration. ``--reference`` names the
exhaustive grid's study; until it exists, the best any study found stands in for it, and
the page says so. By default the studies are every ``report002-STRATEGY`` and
``report002-STRATEGY-sN`` in the storage (STRATEGY: halving, tpe, tpe-hyperband, genetic,
genetic-halving; ``-sN`` a run with ``--strategy-seed N``), and a second table gives each
strategy's runs: how many reach the reference, and the median time. The page counts how many
of the studies' full-budget trainings score exactly the grid's value. A third table lists the
studies retested with ``pairsearch retest`` (stored as ``S-retest``): the configuration
10-fold CV chose and its one test score. ``benchmarks/full_protocol_runs.sh`` runs the studies.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import optuna
import torch
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_strategies import curve  # noqa: E402  (a sibling script, not a package)

from pairsearch.search.store.queries import (  # noqa: E402
    best_trial,
    config_key_of,
    state_counts,
    trial_seconds,
    unfinished_cells,
)
from pairsearch.search.store.storage import open_storage, study_meta  # noqa: E402

STUDY = re.compile(r"^report002-(halving|tpe|tpe-hyperband|genetic|genetic-halving)(-s\d+)?$")
PAUSE_SECONDS = 60.0


def active_seconds(trials: list[optuna.trial.FrozenTrial]) -> float:
    """First start to last finish, less the pauses over a minute between trials (trials
    whose worker died are left out: their stored end is when a later run noticed)."""
    trials = sorted((t for t in trials if trial_seconds(t) > 0), key=lambda t: t.datetime_start)
    if not trials:
        return 0.0
    total, end = 0.0, trials[0].datetime_start
    for trial in trials:
        gap = (trial.datetime_start - end).total_seconds()
        if 0 < gap <= PAUSE_SECONDS:
            total += gap
        if trial.datetime_complete > end:
            total += (trial.datetime_complete - max(end, trial.datetime_start)).total_seconds()
            end = trial.datetime_complete
    return total


def reaches(value: float, target: float, slack: float = 0.0) -> bool:
    """Whether a best value is the reference's (or within ``slack`` of it)."""
    return value >= target - slack - 1e-12


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _config(trial) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(trial.params.items()))


def summarise(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    points = curve(study)
    return {"study": study.study_name, "strategy": study_meta(study).get("strategy", "?"),
            "counts": state_counts(study),
            "trained": points[-1][0] if points else 0,
            "seconds": points[-1][1] if points else 0.0,
            "active": active_seconds(trials), "best": best_trial(study), "trials": trials,
            "full_budget_keys": {config_key_of(t) for t in trials
                                 if t.state == TrialState.COMPLETE},
            "devices": sorted({t.user_attrs["device"] for t in trials
                               if t.user_attrs.get("device")})}


def grid_scores(trials: list[optuna.trial.FrozenTrial]) -> dict[str, Optional[float]]:
    """The exhaustive grid's value of every configuration it trained (``None``: failed)."""
    return {config_key_of(t): t.value for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.FAIL) and "config_key" in t.user_attrs}


def agreement(trials: list[optuna.trial.FrozenTrial],
              scores: dict[str, Optional[float]]) -> tuple[int, int]:
    """How many of a study's own full-budget trainings of a configuration the grid also
    trained score exactly the grid's value, out of how many (reused results left out)."""
    same = compared = 0
    for trial in trials:
        if trial.state != TrialState.COMPLETE or "reused_from" in trial.user_attrs:
            continue
        grid = scores.get(config_key_of(trial))
        if grid is None:
            continue
        compared += 1
        same += abs(grid - trial.value) < 1e-9
    return same, compared


def _judged(rows: list[dict], scores: Optional[dict[str, Optional[float]]]) -> str:
    """Why a choice is judged by the grid's score of it, and whether the studies agree."""
    if scores is None:
        return ("A configuration scores the same in every study run with the same number of "
                "torch threads (docs/scaling.md).")
    same = compared = 0
    for row in rows:
        s, c = agreement(row["trials"], scores)
        same, compared = same + s, compared + c
    judged = ("Each study's choice is judged by the exhaustive grid's own score of that "
              "configuration (one set of measurements) and its rank among the grid's "
              f"{sum(v is not None for v in scores.values()):,} trained configurations. ")
    if compared and same == compared:
        return judged + (f"Here that changes nothing: all {compared:,} of the studies' own "
                         "full-budget trainings of a configuration the grid trained score "
                         "exactly the grid's value (same data, folds, seed and torch threads).")
    return judged + (f"Of the studies' {compared:,} full-budget trainings of a configuration "
                     f"the grid trained, {same:,} score exactly the grid's value: another "
                     "torch thread count changes a training's rounding and so its score, as "
                     "a new seed would (docs/scaling.md).")


def near_best(scores: dict[str, Optional[float]], best: float, slack: float) -> set[str]:
    """The grid's configurations within ``slack`` of its best value."""
    return {k for k, v in scores.items() if v is not None and reaches(v, best, slack)}


def grid_rank(value: float, scores: dict[str, Optional[float]]) -> int:
    """1 + the number of the grid's configurations scoring strictly higher."""
    return 1 + sum(1 for v in scores.values() if v is not None and v > value + 1e-12)


def choice_value(row: dict, scores: Optional[dict[str, Optional[float]]]) -> Optional[float]:
    """A study's choice, scored by the grid when there is one, else by the study itself."""
    best = row["best"]
    if best is None:
        return None
    if scores is None:
        return best.value
    return scores.get(config_key_of(best))


def family(name: str) -> str:
    """A study's strategy without its seed suffix: report002-tpe-s3 -> report002-tpe."""
    return re.sub(r"-s\d+$", "", name)


def _strategy_table(rows: list[dict], target, scores) -> list[str]:
    lines = ["| strategy | runs (seeds) | reach the reference | within 0.5 points | "
             "trainings, median | time in trials, median [range] |", "|---|---|---|---|---|---|"]
    for name in dict.fromkeys(family(r["study"]) for r in rows):
        runs = [r for r in rows if family(r["study"]) == name and r["best"] is not None]
        if not runs:
            continue
        values = [choice_value(r, scores) for r in runs]
        reach = sum(v is not None and reaches(v, target.value) for v in values)
        near = sum(v is not None and reaches(v, target.value, 0.005) for v in values)
        minutes = [r["seconds"] / 60 for r in runs]
        lines.append(f"| `{name}` | {len(runs)} | {reach}/{len(runs)} | {near}/{len(runs)} | "
                     f"{statistics.median(r['trained'] for r in runs):.0f} | "
                     f"{statistics.median(minutes):.1f} min [{min(minutes):.1f}–"
                     f"{max(minutes):.1f}] |")
    return lines + [""]


def retest_lines(studies: list[str], retests: dict[str, Optional[dict]]) -> list[str]:
    """One row per study retested (``pairsearch retest --study S`` stores ``S-retest``): the
    configuration 10-fold CV chose among the study's best, and its one test score."""
    lines = ["| study | retest | chosen by K-fold CV on the training pairs | K-fold CV % "
             "| test accuracy % (trainings × draws) |", "|---|---|---|---|---|"]
    for name in studies:
        chosen = retests.get(name)
        if not chosen:
            continue
        protocol = chosen["test_protocol"]
        params = ", ".join(f"{k} {v}" for k, v in sorted(chosen["params"].items()))
        lines.append(f"| `{name}` | `{name}-retest` | {params} | "
                     f"{100 * chosen['cv_accuracy']:.2f} ({protocol['folds']}-fold) | "
                     f"{100 * chosen['test_accuracy_mean']:.2f} ± "
                     f"{100 * chosen['test_accuracy_std']:.2f} ({protocol['repeats']} × "
                     f"{protocol['draws']}) |")
    if len(lines) == 2:
        return []
    return ["The retests (`pairsearch retest --study S --top 3`; for the grid and the "
            "genetic algorithm, `pairsearch run report002`'s retest stages): each study's best "
            "configurations re-run with 10-fold CV on the training pairs, and the one CV "
            "chose scored once on the test pairs. The test scores do not choose; they say "
            "what each study's choice is worth.", ""] + lines + [""]


def render(rows: list[dict], reference: Optional[dict], command: str,
           retests: Optional[dict[str, Optional[dict]]] = None) -> str:
    found = [r for r in rows if r["best"] is not None]
    scores = None
    if reference is not None and reference["best"] is not None:
        target, target_name = reference["best"], f"the exhaustive grid (`{reference['study']}`)"
        scores = reference["scores"]
    elif found:
        top = max(found, key=lambda r: (r["best"].value, -r["best"].number))
        target, target_name = top["best"], f"the best any of these studies found (`{top['study']}`)"
    else:
        target, target_name = None, None
    judged = _judged(rows, scores)
    lines = [
        "# Report 002's searches at its full protocol",
        "",
        f"Generated by `{command}` on {datetime.date.today()} "
        f"({platform.machine()}, torch {torch.__version__}); trains nothing, reads the studies.",
        "",
        "Every study searched report 002's space (`spaces/report002.toml`: 6,400 cells, 2,800 "
        "distinct trainings) with its protocol: 3-fold CV on 1000 training pairs, 25 epochs, "
        f"seed 0. {judged} Time in trials is the sum "
        "of the trials' durations; active wall time runs from the first start to the last "
        f"finish, less any pause over {PAUSE_SECONDS:.0f} s (a kill and resume).",
        "",
        "| study | strategy | trials (complete / pruned / failed) | trainings "
        "| time in trials | active wall time | best full-budget configuration | 3-fold CV % "
        + ("| the grid's score of it % (rank) " if scores is not None else "")
        + "| reaches the reference | devices |",
        "|---|---|---|---|---|---|---|---|" + ("---|" if scores is not None else "") + "---|---|",
    ]
    for row in rows:
        best = row["best"]
        c = row["counts"]
        value = choice_value(row, scores)
        reached = "–"
        if value is not None and target is not None:
            reached = "yes" if reaches(value, target.value) else (
                f"no ({100 * (value - target.value):+.2f} points)")
        graded = ""
        if scores is not None:
            graded = (f" {100 * value:.2f} ({grid_rank(value, scores)}) |" if value is not None
                      else " – |")
        lines.append(
            f"| `{row['study']}` | {row['strategy']} | {c['complete']} / {c['pruned']} / "
            f"{c['failed']}{' (+' + str(c['running']) + ' running)' if c['running'] else ''} "
            f"| {row['trained']:,} | {_minutes(row['seconds'])} | {_minutes(row['active'])} | "
            f"{_config(best) if best else '–'} | "
            f"{f'{100 * best.value:.2f}' if best else '–'} |{graded} {reached} | "
            f"{', '.join(row['devices']) or '–'} |")
    lines.append("")
    if target is not None:
        lines += _strategy_table(rows, target, scores)
        cost = ""
        if reference is not None and reference["best"] is not None:
            cost = (f"; {reference['trained']:,} trainings, {_minutes(reference['seconds'])} "
                    f"in trials, {_minutes(reference['active'])} of active wall time")
        lines.append(f"Reference: {target_name}: {_config(target)}, "
                     f"{100 * target.value:.2f}% 3-fold CV{cost}.")
        if reference is None or reference["best"] is None:
            lines.append("The exhaustive full-protocol grid (`pairsearch run report002`, its "
                         "`grid` stage) has not been run to the end yet, so no study here can be "
                         "said to have found the space's best cell; this reference is a lower "
                         "bound on it.")
        else:
            close = len(near_best(scores, target.value, 0.001))
            near = len(near_best(scores, target.value, 0.005))
            std = 100 * (target.user_attrs.get("accuracy_std") or 0.0)
            lines.append(f"{close} of the grid's configurations "
                         f"{'lies' if close == 1 else 'lie'} within 0.1 points of its "
                         f"best and {near} within 0.5 points, while the best's fold-to-fold "
                         f"std is {std:.1f} points: the top of this space is a plateau, and "
                         "which of its cells comes first is chance.")
            threads = Counter(t.user_attrs["cpu_threads"] for t in reference["trials"]
                              if t.user_attrs.get("cpu_threads")
                              and "reused_from" not in t.user_attrs)
            if threads:
                lines.append("The grid's trainings that recorded their thread setting: " +
                             "; ".join(f"{k}: {n:,}" for k, n in threads.most_common()) + ".")
        for row in rows:
            if row["strategy"] != "halving":
                continue
            if scores is None:
                inside = config_key_of(target) in row["full_budget_keys"]
                lines.append(f"The reference configuration is {'' if inside else 'not '}"
                             f"among `{row['study']}`'s full-budget survivors.")
            else:
                top = near_best(scores, target.value, 0.005)
                lines.append(f"Of the grid's {len(top)} configurations within 0.5 points of its "
                             f"best, {len(top & row['full_budget_keys'])} are among "
                             f"`{row['study']}`'s full-budget survivors.")
    lines.append("")
    studies = ([reference["study"]] if reference is not None else []) + [r["study"] for r in rows]
    lines += retest_lines(studies, retests or {})
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--studies", default=None,
                        help="comma-separated study names (default: every report002-STRATEGY[-sN])")
    parser.add_argument("--reference", default="report002-grid",
                        help="the exhaustive full-protocol grid's study, when it exists")
    parser.add_argument("--out", default=None, help="write the page here (else print it)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(args.storage, create=False)
    names = {s.study_name for s in storage.get_all_studies()}
    wanted = args.studies.split(",") if args.studies else sorted(
        (n for n in names if STUDY.match(n)), key=lambda n: (family(n), len(n), n))
    rows = [summarise(optuna.load_study(study_name=n, storage=storage))
            for n in wanted if n in names]
    reference = None
    if args.reference in names:
        grid = optuna.load_study(study_name=args.reference, storage=storage)
        partial = unfinished_cells(grid)
        if partial is None:  # a grid is the reference only once every cell is in
            summary = summarise(grid)
            reference = {**summary, "scores": grid_scores(summary["trials"])}
        else:
            print(f"{args.reference}: {partial[0]} of {partial[1]} cells so far; "
                  "not the reference yet")
    command = "python benchmarks/full_protocol.py --storage " + args.storage + (
        f" --out {args.out}" if args.out else "")
    retests = {name: optuna.load_study(study_name=f"{name}-retest", storage=storage)
               .user_attrs.get("chosen")
               for name in [args.reference, *wanted] if f"{name}-retest" in names}
    page = render(rows, reference, command, retests)
    if args.out:
        Path(args.out).write_text(page)
        print(f"written: {args.out}")
    else:
        print(page)


if __name__ == "__main__":
    main()
