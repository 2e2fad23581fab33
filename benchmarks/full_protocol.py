"""Report 002's searches at its full protocol, side by side, from the stored studies.

Usage:
    python benchmarks/full_protocol.py --storage sqlite:///bench/experiments.db
        [--studies NAME,...] [--reference report002-grid] [--out docs/full_protocol.md]

Trains nothing. The studies are runs of ``pairsearch grid --halving``, ``genetic`` and
``tpe`` on report 002's space with the same data, folds and seed (3-fold CV, 25 epochs,
1000 pairs), so a configuration scores the same in each of them and their best values can
be compared exactly. For each study: trials, trainings (reused results not
counted), time in trials (the sum of the trials' durations as Optuna stored them), active
wall time (first start to last finish, less any pause over a minute between trials, e.g.
a kill and resume), and its best full-budget configuration. ``--reference`` names the
exhaustive grid's study; until it exists, the best any study found stands in for it, and
the page says so. By default the studies are every ``report002-STRATEGY`` and
``report002-STRATEGY-sN`` in the storage (STRATEGY: halving, tpe, tpe-hyperband, genetic,
genetic-halving; ``-sN`` a run with ``--strategy-seed N``), and a second table gives each
strategy's runs: how many reach the reference, and the median time.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import statistics
import sys
from pathlib import Path
from typing import Optional

import optuna
import torch
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_strategies import curve  # noqa: E402  (a sibling script, not a package)

from pairsearch.search.queries import (  # noqa: E402
    best_trial,
    config_key_of,
    state_counts,
    trial_seconds,
    unfinished_cells,
)
from pairsearch.search.storage import open_storage, study_meta  # noqa: E402

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
            "active": active_seconds(trials), "best": best_trial(study),
            "full_budget_keys": {config_key_of(t) for t in trials
                                 if t.state == TrialState.COMPLETE},
            "devices": sorted({t.user_attrs["device"] for t in trials
                               if t.user_attrs.get("device")})}


def family(name: str) -> str:
    """A study's strategy without its seed suffix: report002-tpe-s3 -> report002-tpe."""
    return re.sub(r"-s\d+$", "", name)


def _strategy_table(rows: list[dict], target) -> list[str]:
    lines = ["| strategy | runs (seeds) | reach the reference | within 0.5 points | "
             "trainings, median | time in trials, median [range] |", "|---|---|---|---|---|---|"]
    for name in dict.fromkeys(family(r["study"]) for r in rows):
        runs = [r for r in rows if family(r["study"]) == name and r["best"] is not None]
        if not runs:
            continue
        reach = sum(reaches(r["best"].value, target.value) for r in runs)
        near = sum(reaches(r["best"].value, target.value, 0.005) for r in runs)
        minutes = [r["seconds"] / 60 for r in runs]
        lines.append(f"| `{name}` | {len(runs)} | {reach}/{len(runs)} | {near}/{len(runs)} | "
                     f"{statistics.median(r['trained'] for r in runs):.0f} | "
                     f"{statistics.median(minutes):.1f} min [{min(minutes):.1f}–"
                     f"{max(minutes):.1f}] |")
    return lines + [""]


def render(rows: list[dict], reference: Optional[dict], command: str) -> str:
    found = [r for r in rows if r["best"] is not None]
    if reference is not None and reference["best"] is not None:
        target, target_name = reference["best"], f"the exhaustive grid (`{reference['study']}`)"
    elif found:
        top = max(found, key=lambda r: (r["best"].value, -r["best"].number))
        target, target_name = top["best"], f"the best any of these studies found (`{top['study']}`)"
    else:
        target, target_name = None, None
    lines = [
        "# Report 002's searches at its full protocol",
        "",
        f"Generated by `{command}` on {datetime.date.today()} "
        f"({platform.machine()}, torch {torch.__version__}); trains nothing, reads the studies.",
        "",
        "Every study searched report 002's space (`spaces/report002.toml`: 6,400 cells, 2,800 "
        "distinct trainings) with its protocol: 3-fold CV on 1000 training pairs, 25 epochs, "
        "seed 0, so a configuration scores the same in every study. Time in trials is the sum "
        "of the trials' durations; active wall time runs from the first start to the last "
        f"finish, less any pause over {PAUSE_SECONDS:.0f} s (a kill and resume).",
        "",
        "| study | strategy | trials (complete / pruned / failed) | trainings "
        "| time in trials | active wall time | best full-budget configuration | 3-fold CV % "
        "| reaches the reference | devices |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        best = row["best"]
        c = row["counts"]
        reached = "–"
        if best is not None and target is not None:
            reached = "yes" if reaches(best.value, target.value) else (
                f"no ({100 * (best.value - target.value):+.2f} points)")
        lines.append(
            f"| `{row['study']}` | {row['strategy']} | {c['complete']} / {c['pruned']} / "
            f"{c['failed']}{' (+' + str(c['running']) + ' running)' if c['running'] else ''} "
            f"| {row['trained']:,} | {_minutes(row['seconds'])} | {_minutes(row['active'])} | "
            f"{_config(best) if best else '–'} | "
            f"{f'{100 * best.value:.2f}' if best else '–'} | {reached} | "
            f"{', '.join(row['devices']) or '–'} |")
    lines.append("")
    if target is not None:
        lines += _strategy_table(rows, target)
        lines.append(f"Reference: {target_name}: {_config(target)}, "
                     f"{100 * target.value:.2f}% 3-fold CV.")
        if reference is None or reference["best"] is None:
            lines.append("The exhaustive full-protocol grid (`pairsearch run report002`, its "
                         "`grid` stage) has not been run to the end yet, so no study here can be said "
                         "to have found the space's best cell; this reference is a lower bound "
                         "on it.")
        for row in rows:
            if row["strategy"] == "halving":
                inside = config_key_of(target) in row["full_budget_keys"]
                lines.append(f"The reference configuration is {'' if inside else 'not '}"
                             f"among `{row['study']}`'s full-budget survivors.")
    lines.append("")
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
            reference = summarise(grid)
        else:
            print(f"{args.reference}: {partial[0]} of {partial[1]} cells so far; "
                  "not the reference yet")
    command = "python benchmarks/full_protocol.py --storage " + args.storage + (
        f" --out {args.out}" if args.out else "")
    page = render(rows, reference, command)
    if args.out:
        Path(args.out).write_text(page)
        print(f"written: {args.out}")
    else:
        print(page)


if __name__ == "__main__":
    main()
