"""Successive halving against the exhaustive grid: wall time and the cell each returns.

Usage:
    python benchmarks/halving_cost.py [--before-rev REV] [--rounds 3] [--epochs 9]
        [--min-epochs 1] [--eta 3] [--train-pairs 600] [--folds 3] [--device cpu]
        [--out FILE.md]

The space is the quick space (3 models x 2 optimizers x 2 learning rates) with batch
sizes 50 and 100: 24 cells. Each round runs, one after the other, each in its own
process on a fresh SQLite file: ``pairsearch grid`` at ``--epochs`` and ``pairsearch grid
--halving`` (rungs ``--min-epochs``, x eta, ..., ``--epochs``) with this version (survivors
continue from checkpoints) and, with ``--before-rev REV``, with the package at git
revision REV (extracted to a temporary folder and put first on PYTHONPATH; before the
checkpoints, every rung trained from scratch). Rounds alternate the order. Times are
medians over rounds: the command's wall time and the span of its trials (first start to
last end, as Optuna stored them: the start-up of Python and torch left out). The last
columns say whether each run's best full-budget cell is the grid's, and its value
(survivors' full-budget scores equal the grid's for the same cell, so equal values mean
the same result).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Optional

import optuna

ROOT = Path(__file__).resolve().parents[1]
SPACE = """description = "quick x batch sizes: 24 cells"

[params]
model = ["siamese_aux", "twin_aux", "siamese"]
optimizer = ["adam", "sgd"]
lr = [1e-3, 1e-2]
batch_size = [50, 100]
"""


def extract(revision: str, folder: Path) -> Path:
    """The ``pairsearch`` package at git ``revision``, extracted under ``folder``."""
    archive = folder / "before.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), revision,
                    "pairsearch"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "before", filter="data")
    return folder / "before"


def run(kind: str, folder: Path, args: argparse.Namespace, package: Optional[Path],
        label: str) -> dict:
    """One search in a child process; its times and best full-budget trial."""
    database = folder / f"{label}-{time.monotonic_ns()}.db"
    url = f"sqlite:///{database}"
    command = [sys.executable, "-m", "pairsearch", "grid", "--space", str(folder / "space.toml"),
               "--storage", url, "--study", "s", "--epochs", str(args.epochs), "--folds",
               str(args.folds), "--train-pairs", str(args.train_pairs), "--device", args.device,
               "--no-progress"]
    if kind == "halving":
        command += ["--halving", "--min-epochs", str(args.min_epochs), "--eta", str(args.eta)]
    env = dict(os.environ)
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package), env.get("PYTHONPATH", "")])
    started = time.perf_counter()
    # cwd: ``python -m`` puts the working directory first on sys.path (a checkout's own
    # package would shadow the one on PYTHONPATH).
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, cwd=folder)
    wall = time.perf_counter() - started
    trials = optuna.load_study(study_name="s", storage=url).get_trials(deepcopy=False)
    span = (max(t.datetime_complete for t in trials)
            - min(t.datetime_start for t in trials)).total_seconds()
    full = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(full, key=lambda t: t.value)
    database.unlink()
    return {"wall": wall, "span": span, "trials": len(trials), "best": dict(best.params),
            "value": best.value,
            "resumed": sum("resumed_from" in t.user_attrs for t in trials)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-rev", help="git revision whose halving retrains survivors")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--train-pairs", type=int, default=600)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "space.toml").write_text(SPACE)
        before = extract(args.before_rev, folder) if args.before_rev else None
        runs = [("grid", "grid", None), ("halving", "halving", None)]
        if before is not None:
            runs.append(("halving", f"halving at {args.before_rev}", before))
        results: dict[str, list[dict]] = {label: [] for _, label, _ in runs}
        for round_number in range(args.rounds):
            order = runs if round_number % 2 == 0 else runs[::-1]
            for kind, label, package in order:
                results[label].append(run(kind, folder, args, package,
                                          label.replace(" ", "-")))
                print(f"round {round_number + 1}: {label}: "
                      f"{results[label][-1]['wall']:.1f} s", file=sys.stderr)
    grid = results["grid"]
    grid_wall = statistics.median(r["wall"] for r in grid)
    grid_span = statistics.median(r["span"] for r in grid)
    lines = [f"Generated by `python benchmarks/halving_cost.py {' '.join(sys.argv[1:])}` on "
             f"{datetime.date.today()} ({platform.machine()}, {os.cpu_count()} CPUs, device "
             f"{args.device}); "
             f"24 cells, {args.train_pairs} pairs, {args.folds}-fold CV, {args.epochs} epochs; "
             f"halving from {args.min_epochs} epoch(s), eta {args.eta}; medians of "
             f"{args.rounds} rounds.", "",
             "| search | trials | resumed | wall s | x grid | trials' span s | x grid | "
             "best cell = grid's | best value |", "|---|---|---|---|---|---|---|---|---|"]
    for _, label, _ in runs:
        rows = results[label]
        wall = statistics.median(r["wall"] for r in rows)
        span = statistics.median(r["span"] for r in rows)
        same = sum(r["best"] == grid[0]["best"] for r in rows)
        lines.append(f"| {label} | {rows[0]['trials']} | {rows[0]['resumed']} | {wall:.1f} | "
                     f"{wall / grid_wall:.2f} | {span:.1f} | {span / grid_span:.2f} | "
                     f"{same}/{len(rows)} | {rows[0]['value']:.4f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
