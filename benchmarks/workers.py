"""One worker with every CPU thread vs several workers with a share each, on one grid.

Usage:
    python benchmarks/workers.py [--workers 1,2] [--epochs 5] [--folds 3]
        [--train-pairs 1000] [--rounds 2] [--device cpu]

Runs the same small grid (report 002's five networks at two learning rates, CE losses,
AdamW: 10 cells, each a separate training) through ``pairsearch grid --workers W`` into a
fresh database for each W, the values of W alternated over the rounds, and prints the wall
seconds of each (process start to exit: imports and worker start-up included) and the
speed-up over the first W. A worker gets ``cpu_count // W`` torch threads
(``search.workers.spawn_workers``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = """[params]
model = ["naive", "siamese", "twin", "twin_aux", "siamese_aux"]
optimizer = ["adamw"]
lr = [0.001, 0.01]
"""


def run_grid(workers: int, args: argparse.Namespace, folder: Path) -> float:
    """Seconds for ``pairsearch grid --workers workers`` on a fresh database."""
    database = folder / f"w{workers}-{time.time_ns()}.db"
    command = [sys.executable, "-m", "pairsearch", "grid", "--space", str(folder / "space.toml"),
               "--workers", str(workers), "--epochs", str(args.epochs), "--folds",
               str(args.folds), "--train-pairs", str(args.train_pairs), "--device", args.device,
               "--no-progress", "--storage", f"sqlite:///{database}"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--train-pairs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    seconds: dict[int, list[float]] = {w: [] for w in counts}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "space.toml").write_text(SPACE)
        for round_ in range(args.rounds):
            order = counts if round_ % 2 == 0 else counts[::-1]
            for workers in order:
                seconds[workers].append(run_grid(workers, args, folder))
    print(f"{os.cpu_count()} CPUs, 10 cells, {args.folds}-fold, {args.epochs} epochs, "
          f"{args.train_pairs} pairs, device {args.device}, {args.rounds} rounds (alternated)")
    base = statistics.median(seconds[counts[0]])
    for workers in counts:
        median = statistics.median(seconds[workers])
        runs = ", ".join(f"{s:.1f}" for s in seconds[workers])
        print(f"--workers {workers}: median {median:.1f} s ({runs}); "
              f"speed-up over --workers {counts[0]}: {base / median:.2f}x")


if __name__ == "__main__":
    main()
