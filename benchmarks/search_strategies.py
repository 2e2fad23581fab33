"""Search strategies head to head on one space and one protocol, over many seeds.

Usage:
    python benchmarks/search_strategies.py [--space report002] [--epochs 6]
        [--train-pairs 400] [--folds 3] [--seeds 0-9] [--strategies NAME,...]
        [--tpe-trials 200] [--pop 10] [--gens 30] [--min-epochs 1] [--eta 3]
        [--storage sqlite:///bench/strategies.db] [--out docs/img/search_strategies]
        [--json FILE] [--report-only]

Runs, one after the other in this process (each a resumable study, so an interrupted
benchmark continues where it stopped):

- ``grid``: the exhaustive grid, once: the reference (its best cell and value);
- ``halving``: successive halving of the grid from ``--min-epochs`` (deterministic: one
  run); ``halving-N`` starts from N epochs instead;
- ``tpe``, ``tpe-hyperband``: Optuna TPE with the median pruner / Hyperband, per seed;
- ``random`` (random search, no pruner: the baseline), ``random-median`` (random search
  with the median pruner), ``nsga2`` (Optuna's NSGA-II, its own genetic algorithm) and
  ``nsga2-median`` (with the median pruner), with ``--tpe-trials`` trials each, per seed;
- ``ga-faithful`` (report 002: fitness = accuracy + 0.75 × individuality),
  ``ga-normalised`` (0.75 × individuality / its maximum), ``ga-nobonus``,
  ``ga-decaying`` (the bonus falls to 0 at the last generation), ``ga-sharing``
  (fitness sharing): the genetic algorithm, per seed.

The pairs and folds are the same for every study (``seed`` 0), so a configuration scores
the same everywhere and "reaching the exhaustive best" is exact. Seeds vary the
strategies' own choices (``--strategy-seed``). Time is the sum of the trials' durations as
Optuna stored them (so it survives interruptions), counted in completion order.

Prints, per strategy: runs that reach the exhaustive best value, and within 0.5 points of
it; median and interquartile range of configurations trained and of seconds spent to get
there, and in all. Writes ``OUT.png``: best-so-far against wall seconds, the median over
seeds with an interquartile band.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from typing import Optional

import numpy as np
import optuna
from optuna.trial import TrialState

from pairsearch.search.strategies.genetic import GeneticSettings, run_genetic
from pairsearch.search.strategies.halving import run_halving
from pairsearch.search.store.queries import best_trial, crashed, trained_here, trial_seconds
from pairsearch.search.types import SearchSettings
from pairsearch.search.space import load_space
from pairsearch.search.store.storage import open_storage
from pairsearch.search.strategies import run_grid, run_tpe

GA_VARIANTS = {
    "ga-faithful": {"diversity": 0.75, "individuality": "raw"},
    "ga-normalised": {"diversity": 0.75, "individuality": "normalised"},
    "ga-nobonus": {"diversity": 0.0},
    "ga-decaying": {"diversity": 0.75, "fitness": "decaying"},
    "ga-sharing": {"fitness": "sharing"},
}
# Optuna samplers: (sampler, pruner). ``random`` is random search, the baseline every other
# strategy must beat at the same cost; ``nsga2`` is Optuna's own genetic algorithm.
TPE_VARIANTS = {"tpe": ("tpe", "median"), "tpe-hyperband": ("tpe", "hyperband"),
                "random": ("random", "none"), "random-median": ("random", "median"),
                "nsga2": ("nsga2", "none"), "nsga2-median": ("nsga2", "median")}
ALL = ["grid", "halving", *TPE_VARIANTS, *GA_VARIANTS]
WITHIN = 0.005  # "within 0.5 points"


def parse_seeds(text: str) -> list[int]:
    """``0-9`` or ``0,1,2``."""
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def study_name(strategy: str, seed: Optional[int]) -> str:
    return f"bench-{strategy}" if seed is None else f"bench-{strategy}-s{seed}"


def curve(study: optuna.Study) -> list[tuple[int, float, float]]:
    """(configurations trained, seconds, best value so far) after each finished trial, in
    completion order. Reused results cost nothing; low-budget (PRUNED) results count as
    trained but do not set the best: only full-budget values do."""
    finished = [t for t in study.get_trials(deepcopy=False)
                if t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
                and t.datetime_complete is not None and not crashed(t)]
    points, best, trained, seconds = [], float("nan"), 0, 0.0
    for trial in sorted(finished, key=lambda t: t.datetime_complete):
        trained += trained_here(trial)
        seconds += trial_seconds(trial)
        if trial.state == TrialState.COMPLETE:
            best = trial.value if np.isnan(best) else max(best, trial.value)
        points.append((trained, seconds, best))
    return points


def reach(points: list[tuple[int, float, float]], target: float) -> Optional[tuple[int, float]]:
    """(configurations, seconds) when the best so far first reached ``target``."""
    for trained, seconds, best in points:
        if not np.isnan(best) and best >= target - 1e-12:
            return trained, seconds
    return None


def run_all(args: argparse.Namespace, storage, seeds: list[int]) -> None:
    space = load_space(args.space)
    base = dict(folds=args.folds, epochs=args.epochs, seed=0, device=args.device,
                train_pairs=args.train_pairs, test_pairs=1000)

    def timed(name: str, run) -> None:
        started = time.perf_counter()
        summary = run()
        print(f"{name}: best {summary.best_value:.4f}, trained {summary.evaluated}, "
              f"this run {time.perf_counter() - started:.0f} s", flush=True)

    if "grid" in args.strategies:
        timed("grid", lambda: run_grid(space, SearchSettings(**base), storage,
                                       study_name("grid", None), progress=False))
    for name in [s for s in args.strategies if s.startswith("halving")]:
        first = int(name.split("-")[1]) if "-" in name else args.min_epochs
        timed(name, lambda: run_halving(space, SearchSettings(**base), storage,
                                        study_name(name, None), first, args.eta,
                                        progress=False))
    for seed in seeds:
        settings = SearchSettings(**base, strategy_seed=seed)
        for name, (sampler, pruner) in TPE_VARIANTS.items():
            if name in args.strategies:
                timed(f"{name}-s{seed}", lambda: run_tpe(
                    space, settings, storage, study_name(name, seed), args.tpe_trials,
                    progress=False, pruner=pruner, min_epochs=args.min_epochs, eta=args.eta,
                    sampler=sampler))
        for name, options in GA_VARIANTS.items():
            if name in args.strategies:
                genetic = GeneticSettings(pop=args.pop, gens=args.gens, **options)
                timed(f"{name}-s{seed}", lambda: run_genetic(
                    space, settings, genetic, storage, study_name(name, seed), progress=False))


def _median_iqr(values: list[float]) -> str:
    if not values:
        return "-"
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"{median:.0f} [{q1:.0f}–{q3:.0f}]"


def report(args: argparse.Namespace, storage, seeds: list[int]) -> dict:
    names = {s.study_name for s in storage.get_all_studies()}
    if study_name("grid", None) not in names:
        raise SystemExit("no exhaustive grid study yet: run with the grid strategy first")
    grid = optuna.load_study(study_name=study_name("grid", None), storage=storage)
    reference = best_trial(grid)
    ties = [t for t in grid.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value == reference.value]
    grid_points = curve(grid)
    summary: dict = {"machine": platform.processor() or platform.machine(),
                     "space": args.space, "epochs": args.epochs,
                     "train_pairs": args.train_pairs, "folds": args.folds, "seeds": seeds,
                     "exhaustive_best": reference.value,
                     "exhaustive_best_cells": len({t.user_attrs["config_key"] for t in ties}),
                     "exhaustive_best_params": reference.params,
                     "exhaustive_trained": grid_points[-1][0],
                     "exhaustive_seconds": grid_points[-1][1], "strategies": {}}
    print()
    print(f"{summary['machine']}; space {args.space}; {args.folds}-fold CV, {args.epochs} "
          f"epochs, {args.train_pairs} training pairs; exhaustive best {reference.value:.4f} "
          f"({summary['exhaustive_best_cells']} configuration(s)) after "
          f"{grid_points[-1][0]} configurations, {grid_points[-1][1]:.0f} s")
    print()
    print("| strategy | runs | reach the best | within 0.5 points | configurations to the best "
          "| seconds to the best | configurations in all | seconds in all |")
    print("|---|---|---|---|---|---|---|---|")
    curves: dict[str, list] = {}
    for strategy in args.strategies:
        if strategy == "grid":
            continue
        runs = [None] if strategy.startswith("halving") else seeds
        rows = []
        for seed in runs:
            name = study_name(strategy, seed)
            if name not in names:
                continue
            points = curve(optuna.load_study(study_name=name, storage=storage))
            if not points:
                continue
            best_at = reach(points, reference.value)
            near_at = reach(points, reference.value - WITHIN)
            rows.append({"seed": seed, "best": points[-1][2], "trained": points[-1][0],
                         "seconds": points[-1][1], "reach": best_at, "within": near_at})
            curves.setdefault(strategy, []).append(points)
        if not rows:
            continue
        reached = [r for r in rows if r["reach"]]
        within = [r for r in rows if r["within"]]
        summary["strategies"][strategy] = {
            "runs": len(rows), "reached": len(reached), "within": len(within),
            "trained_to_best": [r["reach"][0] for r in reached],
            "seconds_to_best": [r["reach"][1] for r in reached],
            "trained": [r["trained"] for r in rows], "seconds": [r["seconds"] for r in rows],
            "best": [r["best"] for r in rows]}
        s = summary["strategies"][strategy]
        print(f"| {strategy} | {len(rows)} | {len(reached)}/{len(rows)} | "
              f"{len(within)}/{len(rows)} | {_median_iqr(s['trained_to_best'])} | "
              f"{_median_iqr(s['seconds_to_best'])} | {_median_iqr(s['trained'])} | "
              f"{_median_iqr(s['seconds'])} |")
    print(f"| grid (exhaustive) | 1 | 1/1 | 1/1 | "
          f"{reach(grid_points, reference.value)[0]} | "
          f"{reach(grid_points, reference.value)[1]:.0f} | {grid_points[-1][0]} | "
          f"{grid_points[-1][1]:.0f} |")
    _plot(args, curves, grid_points, reference.value)
    return summary


def _plot(args: argparse.Namespace, curves: dict[str, list], grid_points: list,
          best: float) -> None:
    """Best-so-far against seconds: medians over seeds with interquartile bands, the model
    searches (grid, halving, TPE) on the left, the genetic algorithm's variants on the right.
    The exhaustive grid's answer is known only when it completes: a marker, not a curve."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 5.5))
    axes = figure.subplots(1, 2, sharey=True)
    longest = max([p[-1][1] for runs in curves.values() for p in runs] + [grid_points[-1][1]])
    times = np.geomspace(1, longest, 300)
    lowest = best
    for strategy, runs in curves.items():
        axis = axes[1] if strategy.startswith("ga-") else axes[0]
        values = []
        for points in runs:
            seconds = np.array([p[1] for p in points])
            bests = np.array([p[2] for p in points])
            index = np.searchsorted(seconds, times, side="right") - 1
            values.append(np.where(index >= 0, bests[np.clip(index, 0, None)], np.nan))
        values = np.array(values)
        with warnings.catch_warnings():  # before a run's first result: all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(values, axis=0)
            q1, q3 = np.nanpercentile(values, 25, axis=0), np.nanpercentile(values, 75, axis=0)
        lowest = min(lowest, float(np.nanmin(median[-1:])))
        line, = axis.plot(times, median, label=f"{strategy} ({len(runs)} runs)")
        if len(runs) > 1:
            axis.fill_between(times, q1, q3, alpha=0.12, color=line.get_color())
    for axis in axes:
        axis.plot([grid_points[-1][1]], [best], marker="*", markersize=14, color="black",
                  linestyle="none", label="exhaustive grid (known when complete)")
        axis.axhline(best, color="grey", linestyle=":")
        axis.set_xscale("log")
        axis.set_xlabel("seconds in trials (log scale)")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
    axes[0].set_ylim(min(lowest, best - 0.1) - 0.01, best + 0.01)
    axes[0].set_ylabel("best mean CV accuracy so far")
    axes[0].set_title("grid, successive halving, Optuna's samplers", fontsize=10)
    axes[1].set_title("genetic algorithm variants", fontsize=10)
    figure.suptitle(f"{args.space}: {args.folds}-fold CV, {args.epochs} epochs, "
                    f"{args.train_pairs} pairs; medians and interquartile ranges over seeds",
                    fontsize=11)
    figure.tight_layout()
    figure.savefig(args.out + ".png", dpi=110)
    print(f"\nplot: {args.out}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="report002")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-pairs", type=int, default=400)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--strategies", default=",".join(ALL))
    parser.add_argument("--tpe-trials", type=int, default=200)
    parser.add_argument("--pop", type=int, default=10)
    parser.add_argument("--gens", type=int, default=30)
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--storage", default="sqlite:///bench/strategies.db")
    parser.add_argument("--out", default="docs/img/search_strategies")
    parser.add_argument("--json", default=None, help="also write the summary as JSON")
    parser.add_argument("--report-only", action="store_true", help="run nothing, report")
    args = parser.parse_args()
    args.strategies = args.strategies.split(",")
    unknown = {s for s in args.strategies if not s.startswith("halving-")} - set(ALL)
    if unknown:
        raise SystemExit(f"unknown strategies {sorted(unknown)}; valid: {', '.join(ALL)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = parse_seeds(args.seeds)
    storage = open_storage(args.storage)
    if not args.report_only:
        run_all(args, storage, seeds)
    summary = report(args, storage, seeds)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=1)


if __name__ == "__main__":
    main()
