"""Grid vs TPE vs genetic algorithm on one space and one cheap protocol.

Usage:
    python benchmarks/search_strategies.py [--space report002] [--epochs 6] [--train-pairs 400]
        [--folds 3] [--tpe-trials 200] [--pop 10] [--gens 30] [--seeds 0,1,2]
        [--storage sqlite:///benchmark-studies.db] [--out docs/search_strategies]
        [--skip-grid]

Runs, one after the other in this process, the grid (every cell), TPE and three
variants of the genetic algorithm (report 002's bonus 0.75, no bonus, the
normalised bonus 0.75) for each strategy seed; the pairs and folds are the same
for all (``--seed`` 0), so a cell scores the same in every study. Studies are
resumable: re-running skips finished work. Time is the sum of the trials'
durations as Optuna stored them, so it survives interruptions.

Prints a Markdown table (best CV accuracy found, distinct configurations trained,
trials, wall time, and the evaluations each strategy needed to reach the grid's
best) and writes ``OUT.png``: best accuracy so far against configurations trained.
"""

from __future__ import annotations

import argparse
import platform
import time

import optuna
from optuna.trial import TrialState

from pairsearch.search.genetic import GeneticSettings, run_genetic
from pairsearch.search.runner import SearchSettings
from pairsearch.search.space import load_space
from pairsearch.search.storage import open_storage
from pairsearch.search.strategies import run_grid, run_tpe

GA_VARIANTS = {
    "ga-faithful": {"diversity": 0.75, "individuality": "raw"},
    "ga-nobonus": {"diversity": 0.0, "individuality": "raw"},
    "ga-normalised": {"diversity": 0.75, "individuality": "normalised"},
}


def curve(study: optuna.Study) -> list[tuple[int, float]]:
    """(configurations trained so far, best accuracy so far) after each trained configuration.

    Reused results cost nothing, so only trials that trained count as evaluations.
    """
    points, best, trained = [], 0.0, 0
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if trial.state not in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED):
            continue
        if "reused_from" not in trial.user_attrs:
            trained += 1
        if trial.state == TrialState.COMPLETE:
            best = max(best, trial.value)
        points.append((trained, best))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="report002")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-pairs", type=int, default=400)
    parser.add_argument("--test-pairs", type=int, default=1000,
                        help="only the protocol's identity: searches never see test pairs")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--tpe-trials", type=int, default=200)
    parser.add_argument("--pop", type=int, default=10)
    parser.add_argument("--gens", type=int, default=30)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--storage", default="sqlite:///benchmark-studies.db")
    parser.add_argument("--out", default="docs/search_strategies")
    parser.add_argument("--skip-grid", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = load_space(args.space)
    storage = open_storage(args.storage)
    seeds = [int(s) for s in args.seeds.split(",")]
    base = dict(folds=args.folds, epochs=args.epochs, seed=0, device="cpu",
                train_pairs=args.train_pairs, test_pairs=args.test_pairs)
    def timed(name: str, run) -> None:
        started = time.perf_counter()
        summary = run()
        print(f"{name}: best {summary.best_value:.4f}, trained {summary.evaluated}, "
              f"this run {time.perf_counter() - started:.0f} s", flush=True)

    if not args.skip_grid:
        timed("grid", lambda: run_grid(space, SearchSettings(**base), storage, "bench-grid"))
    for seed in seeds:
        settings = SearchSettings(**base, strategy_seed=seed)
        timed(f"tpe-s{seed}", lambda: run_tpe(space, settings, storage, f"bench-tpe-s{seed}",
                                              args.tpe_trials, progress=False))
        for variant, options in GA_VARIANTS.items():
            genetic = GeneticSettings(pop=args.pop, gens=args.gens, **options)
            timed(f"{variant}-s{seed}",
                  lambda: run_genetic(space, settings, genetic, storage,
                                      f"bench-{variant}-s{seed}", progress=False))
    report(storage, seeds, args)


def seconds_in_trials(study: optuna.Study) -> float:
    """Σ (end − start) over the study's trials: its search time, across interruptions."""
    return sum((t.datetime_complete - t.datetime_start).total_seconds()
               for t in study.get_trials(deepcopy=False)
               if t.datetime_complete is not None and t.datetime_start is not None)


def report(storage, seeds: list[int], args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {s.study_name for s in storage.get_all_studies()}
    grid_best = None
    if "bench-grid" in names:
        grid = optuna.load_study(study_name="bench-grid", storage=storage)
        grid_best = max(t.value for t in grid.get_trials(states=(TrialState.COMPLETE,)))
    print()
    print(f"CPU {platform.machine()}, space {args.space}, protocol: {args.folds}-fold CV, "
          f"{args.epochs} epochs, {args.train_pairs} training pairs; grid best "
          f"{grid_best if grid_best is None else f'{grid_best:.4f}'}")
    print()
    print("| study | best CV accuracy | configurations trained | trials | time in trials (s) | "
          "trained to reach the grid's best |")
    print("|---|---|---|---|---|---|")
    figure, axis = plt.subplots(figsize=(8, 5))
    colours = {"grid": "black", "tpe": "tab:blue", "ga-faithful": "tab:red",
               "ga-nobonus": "tab:green", "ga-normalised": "tab:orange"}
    studies = (["grid"] if "bench-grid" in names else []) + [
        f"{kind}-s{seed}" for seed in seeds for kind in ["tpe", *GA_VARIANTS]]
    for name in studies:
        if f"bench-{name}" not in names:
            continue
        study = optuna.load_study(study_name=f"bench-{name}", storage=storage)
        points = curve(study)
        if not points:
            continue
        trained = points[-1][0]
        best = points[-1][1]
        reach = next((n for n, b in points if grid_best is not None and b >= grid_best), None)
        print(f"| {name} | {best:.4f} | {trained} | {len(points)} | "
              f"{seconds_in_trials(study):.0f} | "
              f"{reach if reach is not None else 'not reached'} |")
        kind = name.rsplit("-s", 1)[0] if name != "grid" else "grid"
        axis.step([p[0] for p in points], [p[1] for p in points], where="post",
                  color=colours[kind], alpha=0.9 if kind == "grid" else 0.6,
                  label=kind if name.endswith("-s0") or name == "grid" else None)
    if grid_best is not None:
        axis.axhline(grid_best, color="grey", linestyle=":", label="grid best")
    axis.set_xscale("log")
    axis.set_xlabel("configurations trained (log scale)")
    axis.set_ylabel("best mean CV accuracy so far")
    axis.set_title(f"Best accuracy vs evaluations: {args.space}, {args.folds}-fold CV, "
                   f"{args.epochs} epochs, {args.train_pairs} pairs")
    axis.legend(loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(args.out + ".png", dpi=120)
    print(f"\nplot: {args.out}.png")


if __name__ == "__main__":
    main()
