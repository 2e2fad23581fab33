"""Search strategies head to head on one space and one protocol, over many seeds.

Usage:
    python benchmarks/search_strategies.py [--space report002] [--epochs 6]
        [--train-pairs 400] [--folds 3] [--seeds 0-9] [--strategies NAME,...]
        [--tpe-trials 200] [--pop 10] [--gens 30] [--min-epochs 1] [--eta 3]
        [--storage sqlite:///bench/strategies.db] [--out docs/img/search_strategies]
        [--json FILE] [--report-only]
    python benchmarks/search_strategies.py --table FILE [--seeds 0-99] [--strategies ...]
        [--real STORAGE_URL] [--out ...] [--json FILE]

Runs, one after the other in this process (each a resumable study, so an interrupted
benchmark continues where it stopped):

- ``grid``: the exhaustive grid, once: the reference (its best cell and value);
- ``halving``: successive halving of the grid from ``--min-epochs`` (deterministic: one
  run); ``halving-N`` starts from N epochs instead, ``halving-N-E`` also with eta E;
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
it; the final regret (points below the exhaustive best); median and interquartile range of
configurations trained, epochs trained and seconds spent to get there, and in all. Writes
``OUT.png``: best-so-far against seconds, the median over seeds with an interquartile band.

``--table FILE`` replays every strategy against a tabular benchmark (``pairsearch export``
of a grid run with ``--curves``; ``search.table``) instead of training: the protocol is the
table's, studies live in memory, and a run takes a second or less, so hundreds of seeds
are cheap. Costs are what the real runs would spend: epochs as the real trials train them
(a rung's budget, a pruned trial's epochs, nothing for a reused result) and seconds of the
training the table recorded for those epochs. ``--real URL`` then sets the real runs of
the same names in that storage (trained at the table's protocol, ``bench-STRATEGY-sN``)
beside the replayed distribution: for each, whether the replay with its seed chose the
same configurations in the same order and reached the same best, and where its cost to
the best falls among the replayed runs (percentile).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import platform
import sys
import time
import warnings
from typing import Optional

import numpy as np
import optuna
from optuna.trial import TrialState

from pairsearch.names import Attr
from pairsearch.search.strategies.genetic import GeneticSettings, run_genetic
from pairsearch.search.strategies.halving import run_halving
from pairsearch.search.store.queries import best_trial, crashed, trained_here, trial_seconds
from pairsearch.search.table import Table
from pairsearch.search.types import SearchSettings
from pairsearch.search.space import SearchSpace, load_space, space_from_dict
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


class Replay:
    """What replaying a table needs: the table, its space and its per-epoch seconds."""

    def __init__(self, path: str, space: Optional[str] = None) -> None:
        self.path = path
        self.table = Table.load(path)
        # The space file the real runs used, where given: a study stores its space with
        # sorted keys, and the order of the dimensions is the order samplers draw them in.
        self.space: SearchSpace = load_space(space) if space else \
            space_from_dict(self.table.study, self.table.space)
        if json.loads(self.space.to_json()) != self.table.space:
            raise SystemExit(f"space {space} is not the table's (study {self.table.study})")
        self.epochs = self.table.epochs
        self._per_epoch: dict[str, float] = {}

    def settings(self, device: str) -> dict:
        fields = set(SearchSettings.__dataclass_fields__)
        protocol = {k: v for k, v in self.table.protocol.items() if k in fields}
        return {**protocol, "epochs": self.epochs, "device": device, "table": self.path}

    def seconds(self, trial: optuna.trial.FrozenTrial, epochs: int) -> float:
        """Seconds the grid's training of this trial's configuration took for ``epochs``."""
        cell = json.dumps(trial.params, sort_keys=True)
        if cell not in self._per_epoch:
            config = self.space.config(trial.params)
            config = replace(config, train=replace(config.train, epochs=self.epochs))
            self._per_epoch[cell] = self.table.entries[config.key()].seconds / self.epochs
        return self._per_epoch[cell] * epochs


def curve(study: optuna.Study, replay: Optional[Replay] = None, epochs: Optional[int] = None
          ) -> list[tuple[int, float, float, int]]:
    """(configurations trained, seconds, best value so far, epochs trained) after each
    finished trial, in completion order (replayed: in trial order, with the table's seconds
    for the epochs trained). Reused results cost nothing; low-budget (PRUNED) results count
    as trained but do not set the best: only full-budget values do."""
    finished = [t for t in study.get_trials(deepcopy=False)
                if t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
                and t.datetime_complete is not None and not crashed(t)]
    full = epochs or (replay.epochs if replay else None)
    # A halving survivor continues from its last rung's checkpoint: it trains only the
    # epochs beyond that rung's budget (``resumed_from`` in a real run; a replay, which
    # keeps no checkpoints, is charged as a real run on a file storage would be).
    rung_budgets = {t.user_attrs[Attr.RUNG]: t.user_attrs.get(Attr.BUDGET) for t in finished
                    if Attr.RUNG in t.user_attrs}
    points, best, trained, seconds, spent = [], float("nan"), 0, 0.0, 0
    order = (lambda t: t.number) if replay else (lambda t: t.datetime_complete)
    for trial in sorted(finished, key=order):
        here = trained_here(trial)
        trial_epochs = int(trial.user_attrs.get(Attr.BUDGET) or full or 0) if here else 0
        if here and Attr.RESUMED_FROM in trial.user_attrs:
            trial_epochs -= int(trial.user_attrs[Attr.RESUMED_FROM])
        elif here and replay and trial.user_attrs.get(Attr.RUNG, 0) > 0:
            trial_epochs -= int(rung_budgets.get(trial.user_attrs[Attr.RUNG] - 1) or 0)
        trained += here
        spent += trial_epochs
        seconds += replay.seconds(trial, trial_epochs) if replay else trial_seconds(trial)
        if trial.state == TrialState.COMPLETE:
            best = trial.value if np.isnan(best) else max(best, trial.value)
        points.append((trained, seconds, best, spent))
    return points


def reach(points: list[tuple], target: float) -> Optional[tuple[int, float, int]]:
    """(configurations, seconds, epochs) when the best so far first reached ``target``."""
    for trained, seconds, best, epochs in points:
        if not np.isnan(best) and best >= target - 1e-12:
            return trained, seconds, epochs
    return None


def halving_budget(name: str, args: argparse.Namespace) -> tuple[int, int]:
    """(first budget, eta) of ``halving``, ``halving-N`` or ``halving-N-E``."""
    parts = name.split("-")[1:]
    first = int(parts[0]) if parts else args.min_epochs
    eta = int(parts[1]) if len(parts) > 1 else args.eta
    return first, eta


def run_all(args: argparse.Namespace, storage, seeds: list[int],
            replay: Optional[Replay] = None) -> None:
    space = replay.space if replay else load_space(args.space)
    base = replay.settings(args.device) if replay else dict(
        folds=args.folds, epochs=args.epochs, seed=0, device=args.device,
        train_pairs=args.train_pairs, test_pairs=1000)

    def timed(name: str, run) -> None:
        started = time.perf_counter()
        summary = run()
        if not replay:
            print(f"{name}: best {summary.best_value:.4f}, trained {summary.evaluated}, "
                  f"this run {time.perf_counter() - started:.0f} s", flush=True)

    if "grid" in args.strategies:
        timed("grid", lambda: run_grid(space, SearchSettings(**base), storage,
                                       study_name("grid", None), progress=False))
    for name in [s for s in args.strategies if s.startswith("halving")]:
        first, eta = halving_budget(name, args)
        timed(name, lambda: run_halving(space, SearchSettings(**base), storage,
                                        study_name(name, None), first, eta,
                                        progress=False))
    for seed in seeds:
        if replay:
            print(f"seed {seed}", file=sys.stderr, flush=True)
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


def _median_iqr(values: list[float], digits: int = 0) -> str:
    if not values:
        return "-"
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"{median:.{digits}f} [{q1:.{digits}f}–{q3:.{digits}f}]"


def compare_real(summary: dict, real_storage, replayed_storage, replay: Replay) -> None:
    """Each real run of a replayed strategy beside the replayed distribution (``--real``)."""
    names = {s.study_name for s in real_storage.get_all_studies()}
    print()
    print("| real run | best | reaches the best | replay with its seed: same trials, same "
          "best | epochs to the best | percentile among replayed runs |")
    print("|---|---|---|---|---|---|")
    reference = summary["exhaustive_best"]
    checks = []
    for strategy, figures in summary["strategies"].items():
        for seed in figures["seeds"]:
            name = study_name(strategy, seed)
            if name not in names:
                continue
            real = optuna.load_study(study_name=name, storage=real_storage)
            replayed = optuna.load_study(study_name=name, storage=replayed_storage)
            pick = [(dict(t.params), t.state) for t in sorted(
                real.get_trials(deepcopy=False), key=lambda t: t.number) if not crashed(t)]
            again = [(dict(t.params), t.state) for t in sorted(
                replayed.get_trials(deepcopy=False), key=lambda t: t.number)]
            points = curve(real, None, replay.epochs)
            best, at = points[-1][2], reach(points, reference)
            same = pick == again[:len(pick)]
            same_best = best == curve(replayed, replay)[-1][2]
            spread = figures["epochs_to_best"]
            rank = (f"{100 * np.mean([e <= at[2] for e in spread]):.0f}" if at and spread
                    else "-")
            checks.append({"study": name, "best": best, "same_trials": same,
                           "same_best": same_best,
                           "epochs_to_best": at[2] if at else None, "percentile": rank})
            print(f"| {name} | {best:.4f} | {'yes' if at else 'no'} | "
                  f"{'yes' if same else 'no'}, {'yes' if same_best else 'no'} | "
                  f"{at[2] if at else '-'} | {rank} |")
    summary["real_runs"] = checks


def report(args: argparse.Namespace, storage, seeds: list[int],
           replay: Optional[Replay] = None) -> dict:
    names = {s.study_name for s in storage.get_all_studies()}
    if study_name("grid", None) not in names:
        raise SystemExit("no exhaustive grid study yet: run with the grid strategy first")
    grid = optuna.load_study(study_name=study_name("grid", None), storage=storage)
    reference = best_trial(grid)
    ties = [t for t in grid.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value == reference.value]
    grid_points = curve(grid, replay, args.epochs)
    if replay:
        protocol = replay.table.protocol
        args.space = f"{replay.table.study} (table {replay.path})"
        args.epochs, args.folds = replay.epochs, protocol["folds"]
        args.train_pairs = protocol["train_pairs"]
    summary: dict = {"machine": platform.processor() or platform.machine(),
                     "space": args.space, "epochs": args.epochs, "table": args.table,
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
    print("| strategy | runs | reach the best | within 0.5 points | final regret (points) | "
          "configurations to the best | epochs to the best | seconds to the best | "
          "configurations in all | epochs in all | seconds in all |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
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
            points = curve(optuna.load_study(study_name=name, storage=storage), replay,
                           args.epochs)
            if not points:
                continue
            best_at = reach(points, reference.value)
            near_at = reach(points, reference.value - WITHIN)
            rows.append({"seed": seed, "best": points[-1][2], "trained": points[-1][0],
                         "seconds": points[-1][1], "epochs": points[-1][3],
                         "reach": best_at, "within": near_at})
            curves.setdefault(strategy, []).append(points)
        if not rows:
            continue
        reached = [r for r in rows if r["reach"]]
        within = [r for r in rows if r["within"]]
        summary["strategies"][strategy] = {
            "runs": len(rows), "reached": len(reached), "within": len(within),
            "trained_to_best": [r["reach"][0] for r in reached],
            "seconds_to_best": [r["reach"][1] for r in reached],
            "epochs_to_best": [r["reach"][2] for r in reached],
            "trained": [r["trained"] for r in rows], "seconds": [r["seconds"] for r in rows],
            "epochs": [r["epochs"] for r in rows],
            "best": [r["best"] for r in rows], "seeds": [r["seed"] for r in rows]}
        s = summary["strategies"][strategy]
        regret = [100 * (reference.value - b) for b in s["best"] if not np.isnan(b)]
        print(f"| {strategy} | {len(rows)} | {len(reached)}/{len(rows)} | "
              f"{len(within)}/{len(rows)} | {_median_iqr(regret, 2)} | "
              f"{_median_iqr(s['trained_to_best'])} | {_median_iqr(s['epochs_to_best'])} | "
              f"{_median_iqr(s['seconds_to_best'])} | {_median_iqr(s['trained'])} | "
              f"{_median_iqr(s['epochs'])} | {_median_iqr(s['seconds'])} |")
    at = reach(grid_points, reference.value)
    print(f"| grid (exhaustive) | 1 | 1/1 | 1/1 | 0 | {at[0]} | {at[2]} | {at[1]:.0f} | "
          f"{grid_points[-1][0]} | {grid_points[-1][3]} | {grid_points[-1][1]:.0f} |")
    summary["exhaustive_epochs"] = grid_points[-1][3]
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
    parser.add_argument("--space", default=None,
                        help="default report002 (with --table: the table's, dimensions in "
                             "sorted order; give the real runs' file to retrace them)")
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
    parser.add_argument("--storage", default=None,
                        help="default sqlite:///bench/strategies.db (with --table: in memory)")
    parser.add_argument("--out", default="docs/img/search_strategies")
    parser.add_argument("--json", default=None, help="also write the summary as JSON")
    parser.add_argument("--report-only", action="store_true", help="run nothing, report")
    parser.add_argument("--table", default=None, metavar="FILE",
                        help="replay every strategy against this tabular benchmark "
                             "(pairsearch export) instead of training")
    parser.add_argument("--real", default=None, metavar="URL",
                        help="with --table: a storage holding real runs of these strategies "
                             "at the table's protocol, set beside the replayed ones")
    args = parser.parse_args()
    args.strategies = args.strategies.split(",")
    unknown = {s for s in args.strategies if not s.startswith("halving-")} - set(ALL)
    if unknown:
        raise SystemExit(f"unknown strategies {sorted(unknown)}; valid: {', '.join(ALL)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = parse_seeds(args.seeds)
    replay = Replay(args.table, args.space) if args.table else None
    args.space = args.space or "report002"
    if replay and "grid" not in args.strategies:
        args.strategies.insert(0, "grid")  # the replayed grid is the reference
    storage = optuna.storages.InMemoryStorage() if replay and args.storage is None \
        else open_storage(args.storage or "sqlite:///bench/strategies.db")
    if not args.report_only:
        started = time.perf_counter()
        run_all(args, storage, seeds, replay)
        if replay:
            print(f"replayed in {time.perf_counter() - started:.0f} s")
    summary = report(args, storage, seeds, replay)
    if replay and args.real:
        compare_real(summary, open_storage(args.real, create=False), storage, replay)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=1)


if __name__ == "__main__":
    main()
