"""What each ``pairsearch`` command does: parse its settings, call the library, print.

Commands import the library lazily, so ``--help`` and a mistyped flag answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from pairsearch.errors import PairsearchError


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


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _table_text(table) -> str:
    return table.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def cmd_models(args: argparse.Namespace) -> int:
    from pairsearch.evaluation import train_options
    from pairsearch.models import count_parameters, create_model, list_models, model_entry
    from pairsearch.presets import load_preset, shipped_presets

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
    presets = [{"name": p.name, "description": p.description, "found_by": p.found_by,
                "settings": dict(p.settings)}
               for p in map(load_preset, shipped_presets())]
    if args.json:
        print(json.dumps({"models": rows, "training_options": training, "presets": presets},
                         indent=2))
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
    print("presets (pairsearch evaluate --preset NAME; without --model: best):")
    for preset in presets:
        settings = " ".join(f"{k}={v}" for k, v in preset["settings"].items())
        print(f"    {preset['name']}: {settings}")
        print(f"        {preset['description']}; found by: {preset['found_by']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pairsearch.data import generate_draws, load_pools
    from pairsearch.evaluation import Config, Protocol, evaluate, resolve_device

    settings = parse_settings(args.set)
    if args.epochs is not None:
        settings["epochs"] = str(args.epochs)
    model = args.model
    if model is None:
        from pairsearch.presets import DEFAULT_PRESET, load_preset

        preset = load_preset(args.preset or DEFAULT_PRESET)
        model, settings = preset.model, {**preset.options(), **settings}
    config = Config.from_settings(model, settings)
    protocol = Protocol("test" if args.test else "cv", args.folds, args.repeats, args.draws)
    device = resolve_device(args.device)
    draws = generate_draws(load_pools(args.data), args.train_pairs, args.test_pairs, args.seed,
                           args.draws, args.inputs)
    result = evaluate(config, draws, protocol, args.seed, device, engine=args.engine,
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
    if protocol["draws"] > 1:
        kind += f" x {protocol['draws']} draws"
    print(f"config:   {config}")
    print(f"protocol: {kind}, seed {report['seed']}")
    print(f"data:     {report['data']}")
    print(f"device:   {report['device']}, {report['precision']}")
    if report["runs"]:
        table = pd.DataFrame(report["runs"])
        table = table.drop(columns=["seed"]).rename(columns={"train_seconds": "seconds"})
        if protocol["kind"] == "test":
            table = table.drop(columns=["fold"])
        if protocol["draws"] == 1:
            table = table.drop(columns=["draw"])
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        digit = report["digit_accuracy_mean"]
        print(f"accuracy {report['accuracy_mean']:.4f} ± {report['accuracy_std']:.4f}   "
              f"F1 {report['f1_mean']:.4f}   digit accuracy "
              f"{'-' if digit is None else f'{digit:.4f}'}   "
              f"{report['params']:,} parameters   {report['train_seconds']:.1f} s training")
        if report["draw_std"] is not None:
            means = ", ".join(f"{m:.4f}" for m in report["draw_means"])
            print(f"draw means {means} (std between draws {report['draw_std']:.4f})")
    if report["failed"]:
        print(f"FAILED: {report['failed']}")


def _interrupted() -> int:
    """Ctrl-C twice: the running trial was failed (not a result) and runs again on resume."""
    print("pairsearch: interrupted; the running trial is marked failed and will be "
          "evaluated again: run the same command to resume", file=sys.stderr)
    return 130


def _search_settings(args: argparse.Namespace):
    from pairsearch.search.types import SearchSettings

    return SearchSettings(folds=args.folds, epochs=args.epochs, seed=args.seed, data=args.data,
                          device=args.device, precision=args.precision,
                          train_pairs=args.train_pairs, test_pairs=args.test_pairs,
                          strategy_seed=getattr(args, "strategy_seed", None),
                          inputs=args.inputs, table=getattr(args, "table", None))


def _print_summary(summary, storage_url: str) -> None:
    if summary.stopped:
        print(f"stopped: study {summary.study} holds {summary.trials} finished trials; run the "
              "same command again to resume")
    best = "-" if summary.best_value is None else f"{summary.best_value:.4f}"
    print(f"study {summary.study}: {summary.trials} finished trials; this run evaluated "
          f"{summary.evaluated}, reused {summary.reused} stored results, {summary.failed} failed")
    print(f"best mean CV accuracy {best} with {summary.best_params}")
    print(f"see: pairsearch show --study {summary.study} --storage {storage_url}")


def _run_search(args: argparse.Namespace, kind: str, options: dict) -> int:
    """Run search strategy ``kind`` (``search.strategies.run_strategy``) with ``options``,
    with Ctrl-C handling and optional extra worker processes.

    Everything is checked (space, protocol, data, budgets) before extra workers start
    or anything is written.
    """
    import optuna

    from pairsearch.search.driver import study_totals
    from pairsearch.search.space import load_space
    from pairsearch.search.store.storage import open_storage
    from pairsearch.search.strategies import run_strategy
    from pairsearch.search.workers import StopRequest, start_workers

    _quiet_optuna()
    stop = StopRequest().install()
    # The other workers start first: they take a few seconds to import torch. A bad input
    # stops them as it stops this one (each checks it before writing anything).
    children = start_workers(args.argv, getattr(args, "workers", 1))
    try:
        space = load_space(args.space)
        name = args.study or f"{space.name}-{kind}"
        # Opened by the driver once every check passed: a refused search writes nothing.
        summary = run_strategy(kind, space, _search_settings(args),
                               lambda: open_storage(args.storage), name, options,
                               not args.no_progress, stop, args.batching)
    except KeyboardInterrupt:
        return _interrupted()
    finally:
        stop.uninstall()
        codes = [child.wait() for child in children]
    if children:  # the study's totals now include the other workers' trials
        summary = replace(summary, **study_totals(optuna.load_study(
            study_name=name, storage=open_storage(args.storage))))
    _print_summary(summary, args.storage)
    return _workers_failed(codes)


def _workers_failed(codes: Sequence[int]) -> int:
    """1 (after saying so) if any worker process failed, else 0."""
    if any(codes):
        print(f"pairsearch: {sum(1 for c in codes if c)} worker process(es) failed "
              f"(exit codes {list(codes)})", file=sys.stderr)
        return 1
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    if args.halving:
        if args.curves:
            raise PairsearchError("--curves is for the exhaustive grid (halving records "
                                  "every rung's curve already)")
        return _run_search(args, "halving", {"min_epochs": args.min_epochs, "eta": args.eta})
    return _run_search(args, "grid", {"curves": args.curves or None})


def cmd_tpe(args: argparse.Namespace) -> int:
    return _run_search(args, "tpe", {"trials": args.trials, "pruner": args.pruner,
                                     "min_epochs": args.min_epochs, "eta": args.eta,
                                     "sampler": args.sampler})


def cmd_genetic(args: argparse.Namespace) -> int:
    return _run_search(args, "genetic", {
        "pop": args.pop, "gens": args.gens, "survivors": args.survivors,
        "diversity": args.diversity, "individuality": args.individuality,
        "mutation": args.mutation, "halving": args.halving, "min_epochs": args.min_epochs,
        "eta": args.eta, "fitness": args.fitness})


def cmd_show(args: argparse.Namespace) -> int:
    from pairsearch.search.store.tables import best_trials_table
    from pairsearch.search.store.storage import load_existing, open_storage

    from pairsearch.search.strategies.retest import retest_table
    from pairsearch.search.store.storage import study_meta

    study = load_existing(open_storage(args.storage, create=False), args.study)
    if study_meta(study).get("strategy") == "retest":
        # A retest's candidates with their paired test against the chosen one.
        table = retest_table(study).head(args.top)
    else:
        table = best_trials_table(study, args.top)
    if table.empty:
        print(f"study {args.study} has no complete trial yet")
        return 0
    print(_table_text(table))
    chosen = study.user_attrs.get("chosen")
    if chosen:
        print(f"chosen by K-fold CV: trial {chosen['retest_trial']}; test accuracy "
              f"{chosen['test_accuracy_mean']:.4f} ± {chosen['test_accuracy_std']:.4f} "
              f"({chosen['test_protocol']})")
    if args.csv:
        try:
            table.to_csv(args.csv, index=False)
        except OSError as error:
            raise PairsearchError(f"cannot write {args.csv}: {error.strerror}") from None
    return 0


def cmd_studies(args: argparse.Namespace) -> int:
    from pairsearch.search.store.tables import studies_table
    from pairsearch.search.store.storage import open_storage

    table = studies_table(open_storage(args.storage, create=False))
    print(_table_text(table) if not table.empty else f"no studies in {args.storage}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pairsearch.search.store.storage import load_existing, open_storage
    from pairsearch.search.table import Table, export_table

    study = load_existing(open_storage(args.storage, create=False), args.study)
    data = export_table(study)
    try:
        Table.save(data, args.out)
    except OSError as error:
        raise PairsearchError(f"cannot write {args.out}: {error.strerror}") from None
    table = Table(data, args.out)
    best, cells = table.best()
    print(f"{args.out}: {len(table.entries)} configurations of study {args.study} at "
          f"{table.epochs} epochs, learning curves {'yes' if table.curves else 'no'}; best "
          f"{best:.4f} ({len(cells)} configuration(s))")
    return 0


def cmd_retest(args: argparse.Namespace) -> int:
    from pairsearch.search.store.queries import retest_study_name
    from pairsearch.search.strategies.retest import retest
    from pairsearch.search.store.storage import open_storage
    from pairsearch.search.workers import StopRequest

    _quiet_optuna()
    stop = StopRequest().install()
    try:
        table = retest(open_storage(args.storage, create=False), args.study, args.top,
                       args.folds, args.repeats, args.device, args.precision, args.draws,
                       not args.no_progress, stop, args.cv_repeats, args.per_architecture)
    finally:
        stop.uninstall()
    print(_table_text(table))
    print(f"stored in study {retest_study_name(args.study)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pairsearch.experiments import describe, list_experiments, load_experiment

    if args.list:
        for name in list_experiments():
            print(describe(load_experiment(name)))
        return 0
    if not args.experiment:
        raise PairsearchError("run needs an EXPERIMENT (see pairsearch run --list)")
    if args.json and not args.table:
        raise PairsearchError("--json goes with --table")
    _quiet_optuna()
    overrides = {key: value for key, value in (("epochs", args.epochs),
                                               ("train_pairs", args.train_pairs),
                                               ("test_pairs", args.test_pairs),
                                               ("draws", args.draws))
                 if value is not None}
    experiment = load_experiment(args.experiment, args.quick, overrides, args.prefix)
    stage_names = [stage.name for stage in experiment.stages]
    for name in args.stage or []:
        if name not in stage_names:
            raise PairsearchError(f"--stage {name!r}: {experiment.name} has no such stage; "
                                  f"its stages: {', '.join(stage_names)}")
    if args.table:
        return _print_reproduction(experiment, args)
    return _run_experiment(experiment, args)


def _print_reproduction(experiment, args: argparse.Namespace) -> int:
    from pairsearch.experiments import (
        evidence_note,
        experiment_times,
        gap_summary,
        load_experiment,
        reproduction_rows,
        reproduction_table,
    )
    from pairsearch.search.store.storage import open_storage

    storage = open_storage(args.storage, create=False)
    # Each stored study is held against the budget the file states (no --quick, no
    # overrides): a study that ran less is a smoke run, verdict "quick", whatever the flags.
    stated = load_experiment(args.experiment)
    rows = reproduction_rows(experiment, storage, stated)
    times = experiment_times(experiment, storage)
    gaps = gap_summary(rows)  # from every row: a gap's ablations may stand in other stages
    if args.stage:
        rows = [row for row in rows if row["stage"] in args.stage]
        gaps = [gap for gap in gaps if gap["stage"] in args.stage]
    if args.json:
        print(json.dumps({"experiment": experiment.name, "rows": rows, "gaps": gaps, **times}))
        return 0
    if not rows:
        print(f"{experiment.name}: no stage has reported figures")
        return 0
    print(reproduction_table(rows).drop(columns="note").to_string(index=False))
    print(f"{times['seconds'] / 60:.1f} min in trials on {', '.join(times['devices']) or '-'}")
    quick = [row for row in rows if row["verdict"] == "quick"]
    if quick:
        short = sorted({", ".join(row["reduced"]) for row in quick})
        print(f"quick: {len(quick)} of {len(rows)} rows are smoke runs on less than the stated "
              f"budget ({'; '.join(short)}), not judged against the report")
    for gap in gaps:  # each faithful row outside 2σ, with what its ablations found
        tried = "; ".join(f"{e['source']}/{e['row']} {e['verdict']}{evidence_note(e)}"
                          for e in gap["evidence"])
        print(f"outside 2σ: {gap['stage']}/{gap['row']} {gap['verdict']}: {gap['status']} "
              f"(evidence: {tried or 'none run'})")
    return 0


def _run_experiment(experiment, args: argparse.Namespace) -> int:
    from pairsearch.data import load_pools
    from pairsearch.evaluation import resolve_device
    from pairsearch.experiments import RunOptions, run_experiment, write_experiment_report
    from pairsearch.search.store.storage import open_storage
    from pairsearch.search.workers import WORKER_OF, StopRequest, start_workers

    # The other workers run the same experiment: every stage's study is shared (grid and
    # test cells are claimed, a GA stage has one owner), and each stage ends only when
    # every worker's trials of it are in, so a chained stage reads the whole of its source.
    # They start first (importing torch takes seconds); a bad input stops each of them as
    # it stops this one, before anything is written.
    children = start_workers(args.argv, args.workers)
    resolve_device(args.device)  # bad device or data: refused before the storage is touched
    load_pools(args.data)
    storage = open_storage(args.storage)
    stop = StopRequest().install()
    try:
        studies = run_experiment(experiment, storage,
                                 RunOptions(args.seed, args.data, args.device, args.precision,
                                            not args.no_progress), stop,
                                 only=args.stage)
    except KeyboardInterrupt:
        return _interrupted()
    finally:
        stop.uninstall()
        codes = [child.wait() for child in children]
    if stop.requested:
        print(f"stopped: run the same command again to resume {experiment.name}")
        return 0
    if _workers_failed(codes):
        return 1
    if os.environ.get(WORKER_OF):
        return 0  # a worker: the process that started it writes the report
    if args.out:
        path = write_experiment_report(experiment, storage, Path(args.out))
        print(f"report written to {path}")
    print(f"studies: {', '.join(studies)} (pairsearch show --study NAME --storage "
          f"{args.storage})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pairsearch.search.markdown import write_report
    from pairsearch.search.store.storage import load_existing, open_storage

    study = load_existing(open_storage(args.storage, create=False), args.study)
    path = write_report(study, Path(args.out or f"report-{args.study}"), args.top)
    print(f"report written to {path}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from optuna_dashboard import run_server

    from pairsearch.search.store.storage import open_storage

    storage = open_storage(args.storage, create=False)
    print(f"optuna-dashboard on http://{args.host}:{args.port} for {args.storage} (Ctrl-C stops)")
    run_server(storage, host=args.host, port=args.port)
    return 0


COMMANDS = {"models": cmd_models, "evaluate": cmd_evaluate, "grid": cmd_grid, "tpe": cmd_tpe,
            "genetic": cmd_genetic, "show": cmd_show, "studies": cmd_studies, "export": cmd_export,
            "retest": cmd_retest, "report": cmd_report, "run": cmd_run,
            "dashboard": cmd_dashboard}
