"""Experiment files: what a TOML experiment may hold, checked before anything runs.

An experiment is a list of stages, each stored as one Optuna study named
``EXPERIMENT-STAGE`` (``EXPERIMENT-quick-STAGE`` with ``--quick``):

=========  ======================================================================
kind       what the stage does
=========  ======================================================================
grid       every cell of its space, scored by K-fold CV on the training pairs
tpe        an Optuna sampler for ``trials`` trials (CV): ``sampler`` (tpe, random,
           nsga2), ``pruner``, ``min_epochs``, ``eta`` as ``pairsearch tpe`` takes them
genetic    report 002's genetic algorithm (CV): ``pop``, ``gens``, ...
test       every cell trained ``repeats`` times on all training pairs, on each of
           ``draws`` draws of the pairs, and scored on the test pairs (the reports'
           protocol); ``train_accuracy = true`` also scores each run on its own
           training pairs. With ``of = "STAGE"`` a test stage trains nothing: its rows
           read that test stage's trials (the same trainings, e.g. under the
           ``train_accuracy`` metric), and its study is that stage's
retest     the ``top`` best configurations of stage ``of`` with K=10 CV (repeated
           ``cv_repeats`` times on the same folds for every candidate); the one it
           chooses is scored on the test pairs (report 002's second stage)
=========  ======================================================================

A stage's space is a shipped space (``space = "report002"``) or its own
``params`` / ``fixed`` / ``variants`` / ``budget`` tables (see ``search.space``).
``best_of`` and ``base`` chain stages (``experiments.chaining``). A stage's
``reported`` table holds the report's published figures for its rows, which
``pairsearch run EXPERIMENT --table`` sets beside ours (``experiments.tables``).

``[quick]`` (and a stage's own ``quick`` table) holds a reduced budget that
``--quick`` applies on top, so a user sees an experiment work in minutes.
"""

from __future__ import annotations

import itertools

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from pairsearch.errors import PairsearchError
from pairsearch.names import BUDGET_TABLE, STRATEGY_OPTIONS
from pairsearch.toml_files import read_toml, shipped

KINDS = (*STRATEGY_OPTIONS, "retest")
"""Every search strategy (``names.STRATEGY_OPTIONS``: grid, test, halving, tpe, genetic)
and report 002's retest."""
SELECT = ("cv", "test")
PROTOCOL_KEYS = {"folds", "repeats", "epochs", "train_pairs", "test_pairs", "draws", "inputs"}
SPACE_KEYS = {"space", "params", "fixed", "variants", BUDGET_TABLE}
REPORTED_KEYS = {"mean", "error", "std", "variance", "params", "f1", "digit_accuracy",
                 "seconds", "note", "beside", "ablates", "retests", "metric", "brackets"}
METRICS = ("accuracy", "train_accuracy", "best_replica")
RETEST_KEYS = {"top", "cv_repeats", "per_architecture"}
TEST_KEYS = {"train_accuracy"}
OPTION_KEYS = {key for keys in STRATEGY_OPTIONS.values() for key in keys}
"""Every strategy's options; a stage may set only its own kind's."""
_STAGE_KEYS = ({"name", "kind", "description", "best_of", "base", "of", "quick", "select",
                "reported"} | PROTOCOL_KEYS | SPACE_KEYS | OPTION_KEYS | RETEST_KEYS | TEST_KEYS)


def stage_options(stage: "Stage") -> dict[str, Any]:
    """The strategy options a stage sets (those of its kind: ``names.STRATEGY_OPTIONS``)."""
    return {key: stage.get(key) for key in STRATEGY_OPTIONS.get(stage.kind, ())
            if stage.get(key) is not None}
_DOCUMENT_KEYS = {"description", "defaults", "quick", "stages", "report", "companion_of"}


def reads_trials_of(stage: "Stage") -> Optional[str]:
    """The stage whose trials a test stage with ``of = "STAGE"`` reads (it trains
    nothing); ``None`` for every other stage."""
    return stage.get("of") if stage.kind == "test" else None


@dataclass(frozen=True)
class Stage:
    """One step of an experiment (a table of the TOML file, overrides applied).

    Attributes:
        name: Stage name; its study is ``EXPERIMENT-NAME``.
        kind: grid, tpe, genetic, test or retest.
        settings: The stage's keys (protocol, space, chaining, strategy options).
    """

    name: str
    kind: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A setting of the stage."""
        return self.settings.get(key, default)


@dataclass(frozen=True)
class Experiment:
    """A named list of stages.

    Attributes:
        name: File stem (``report000``); with ``--quick``, ``report000-quick``.
        description: One line.
        stages: In order.
        report: The report it reproduces (``[report]``: ``title``, ``source``).
        companion_of: For an improved companion, the faithful experiment it stands beside.
    """

    name: str
    description: str
    stages: tuple[Stage, ...]
    report: Mapping[str, Any] = field(default_factory=dict)
    companion_of: Optional[str] = None


def list_experiments() -> list[str]:
    """Names of the experiments shipped with pairsearch."""
    return shipped("experiments")


def load_experiment(spec: str, quick: bool = False,
                    overrides: Optional[Mapping[str, Any]] = None,
                    prefix: Optional[str] = None) -> Experiment:
    """A shipped experiment by name, or a TOML file by path.

    Args:
        spec: ``report000`` ... or a path.
        quick: Apply the file's reduced budget (``[quick]`` and each stage's ``quick``).
        overrides: Protocol settings for every stage, applied last (``epochs``,
            ``train_pairs``, ``test_pairs``, ``draws``).
        prefix: Study-name prefix (default: the name, with ``-quick`` under ``quick``).

    Raises:
        PairsearchError: If the file is missing or invalid; the message names the stage
            and key.
    """
    name, document = read_toml(spec, "experiments", "experiment")
    return experiment_from_dict(name, document, quick, overrides, prefix)


def _check_reported(name: str, stage: str, reported: Any) -> None:
    if not isinstance(reported, dict) or not all(isinstance(v, dict) for v in reported.values()):
        raise PairsearchError(f"experiment {name!r}, stage {stage!r}: reported must hold one "
                              "[stages.reported.ROW] table per row")
    for row, figures in reported.items():
        bad = sorted(set(figures) - REPORTED_KEYS)
        if bad:
            raise PairsearchError(f"experiment {name!r}, stage {stage!r}, reported row "
                                  f"{row!r}: unknown key {bad[0]!r} (valid: "
                                  f"{', '.join(sorted(REPORTED_KEYS))})")
        if not isinstance(figures.get("brackets", True), bool) or (
                "brackets" in figures and "ablates" not in figures):
            raise PairsearchError(f"experiment {name!r}, stage {stage!r}, reported row "
                                  f"{row!r}: brackets = {figures['brackets']!r} must be true "
                                  "or false, on a row that ablates one")
        if figures.get("metric", "accuracy") not in METRICS:
            raise PairsearchError(f"experiment {name!r}, stage {stage!r}, reported row "
                                  f"{row!r}: metric = {figures['metric']!r} (valid: "
                                  f"{', '.join(METRICS)})")


def _check_row_links(name: str, stage: str, reported: Mapping[str, Any],
                   stages: Mapping[str, "Stage"]) -> None:
    """An ablation row names the faithful rows it tests (``ablates = "STAGE/ROW"`` or a
    list), a report's retest row the row it retests (``retests``): a stage's reported
    rows, so that a typo cannot orphan it."""
    for row, figures in reported.items():
        for key in ("ablates", "retests"):
            targets = figures.get(key, [])
            for target in [targets] if isinstance(targets, str) else targets:
                target_stage, _, target_row = str(target).partition("/")
                rows = ((stages[target_stage].get("reported") or {}) if target_stage in stages
                        else {})
                if target_row in rows:
                    continue
                raise PairsearchError(f"experiment {name!r}, stage {stage!r}, reported row "
                                      f"{row!r}: {key} = {target!r} is no stage's reported "
                                      "row (write \"STAGE/ROW\")")


def _check_reader(name: str, stage: str, table: Mapping[str, Any],
                  earlier: Mapping[str, "Stage"]) -> "Stage":
    """A test stage with ``of`` reads an earlier test stage's trials: it has no cells,
    protocol or chaining of its own, and its ``train_accuracy`` rows need the source to
    record that score. Returns the source."""
    source = earlier.get(table["of"])
    if source is None or source.kind != "test" or reads_trials_of(source):
        raise PairsearchError(f"experiment {name!r}, stage {stage!r}: of = {table['of']!r} "
                              "is not an earlier test stage with trainings of its own")
    own = sorted((SPACE_KEYS | PROTOCOL_KEYS | TEST_KEYS | {"best_of", "base", "select"})
                 & set(table))
    if own:
        raise PairsearchError(f"experiment {name!r}, stage {stage!r}: a stage that reads "
                              f"stage {table['of']!r}'s trials takes no {own[0]!r} (its "
                              "cells and protocol are that stage's)")
    rows = table.get("reported") or {}
    if any(f.get("metric") == "train_accuracy" for f in rows.values()) and \
            not source.get("train_accuracy"):
        raise PairsearchError(f"experiment {name!r}, stage {stage!r}: its train_accuracy "
                              f"rows need train_accuracy = true on stage {table['of']!r}")
    return source


def _own_epochs_win(table: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A stage whose ``fixed`` or variants set ``epochs`` trains those: ``[defaults]``'s
    epochs would otherwise be its protocol and override them. Variants that set none keep
    the defaults' number; a stage-level ``epochs`` or ``--quick``'s still applies to all."""
    table = dict(table)
    variants = table.get("variants", {})
    own = "epochs" in table.get("fixed", {}) or any("epochs" in v for v in variants.values())
    if not own or "epochs" in table or "epochs" not in defaults:
        return table
    table["epochs"] = None  # no protocol epochs: each cell's own
    if "epochs" not in table.get("fixed", {}):
        table["variants"] = {n: {"epochs": defaults["epochs"], **v} for n, v in variants.items()}
    return table


def _check_rows(name: str, stage: str, table: Mapping[str, Any]) -> None:
    """A test or grid stage's reported rows must name rows its cells produce
    (``variant/value/...``, as ``tables.row_label`` writes them; a grid's may also be
    ``best`` or ``KEY=VALUE``): a misspelt row would read "not run" for ever."""
    params = table.get("params", {})
    if not all(isinstance(v, list) for v in params.values()):
        return  # generated values (``choose``): the rows cannot be listed here
    axes = ([list(table["variants"])] if "variants" in table else []) + \
        [params[k] for k in sorted(params)]
    if not axes:
        return
    rows = {"/".join(str(v) for v in cell) for cell in itertools.product(*axes)}
    for row in table["reported"]:
        if table.get("kind") == "grid" and (row == "best" or "=" in row):
            continue
        if row not in rows:
            raise PairsearchError(f"experiment {name!r}, stage {stage!r}: reported row "
                                  f"{row!r} is none of the stage's rows (valid: "
                                  f"{', '.join(sorted(rows))})")


def experiment_from_dict(name: str, document: Mapping[str, Any], quick: bool = False,
                         overrides: Optional[Mapping[str, Any]] = None,
                         prefix: Optional[str] = None) -> Experiment:
    """Build and check an experiment from a parsed TOML document.

    Raises:
        PairsearchError: On an unknown table or key, a bad kind, or a reference to a
            stage that does not come earlier.
    """
    unknown = sorted(set(document) - _DOCUMENT_KEYS)
    if unknown:
        raise PairsearchError(f"experiment {name!r}: unknown key {unknown[0]!r} (expected "
                              "description, [report], [defaults], [quick], [[stages]])")
    tables = document.get("stages")
    if not isinstance(tables, list) or not tables:
        raise PairsearchError(f"experiment {name!r} has no [[stages]]")
    defaults = dict(document.get("defaults", {}))
    quick_table = dict(document.get("quick", {})) if quick else {}
    stages: list[Stage] = []
    for table in tables:
        stage_name = table.get("name")
        if not isinstance(stage_name, str) or not stage_name:
            raise PairsearchError(f"experiment {name!r}: every stage needs a name")
        bad = sorted(set(table) - _STAGE_KEYS)
        if bad:
            raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: unknown key "
                                  f"{bad[0]!r}")
        kind = table.get("kind")
        if kind not in KINDS:
            raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: bad kind "
                                  f"{kind!r}; valid: {', '.join(KINDS)}")
        own = set(STRATEGY_OPTIONS.get(kind, ())) | (RETEST_KEYS if kind == "retest" else set())
        foreign = sorted((set(table) & (OPTION_KEYS | RETEST_KEYS)) - own)
        if foreign:
            raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: a {kind} stage "
                                  f"does not take {foreign[0]!r} (its options: "
                                  f"{', '.join(sorted(own)) or 'none'})")
        if table.get("select", "cv") not in SELECT:
            raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: bad select "
                                  f"{table.get('select')!r}; valid: {', '.join(SELECT)}")
        if "train_accuracy" in table and (kind != "test" or
                                          not isinstance(table["train_accuracy"], bool)):
            raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: "
                                  "train_accuracy = true|false, on a test stage only")
        earlier = {s.name: s for s in stages}
        source = None
        if kind == "test" and "of" in table:
            source = _check_reader(name, stage_name, table, earlier)
        if "reported" in table:
            _check_reported(name, stage_name, table["reported"])
            if kind in ("test", "grid"):
                # A reader's rows are its source's cells.
                cells = table if source is None else {**source.settings, "kind": kind,
                                                      "reported": table["reported"]}
                _check_rows(name, stage_name, cells)
        mixed = sorted((SPACE_KEYS - {"space"}) & set(table)) if "space" in table else []
        if mixed:
            raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: space = "
                                  f"{table['space']!r} and {', '.join(mixed)} together; a "
                                  "stage's space is a shipped space or its own tables, not both")
        table = _own_epochs_win(table, defaults)
        settings = {**{k: v for k, v in defaults.items() if k in PROTOCOL_KEYS},
                    **{k: v for k, v in table.items() if k not in ("name", "kind", "quick")}}
        if quick:
            own = dict(table.get("quick", {}))
            # The file's [quick] budget, for the stages whose kind takes each key.
            takes = set(STRATEGY_OPTIONS.get(kind, ())) | \
                (RETEST_KEYS if kind == "retest" else set())
            settings.update({k: v for k, v in quick_table.items() if k in PROTOCOL_KEYS
                             or k in takes})
            if {"params", "variants"} & set(own):
                settings.pop("space", None)  # the quick space replaces the shipped one
            settings.update(own)
        settings.update(overrides or {})
        for key in ("best_of", "base", "of"):
            ref = settings.get(key)
            if ref is None:
                continue
            if ref not in earlier:
                raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: {key} = "
                                      f"{ref!r} is not an earlier stage")
            if earlier[ref].kind == "retest" or reads_trials_of(earlier[ref]):
                kind_of = "a retest" if earlier[ref].kind == "retest" else \
                    f"read from stage {reads_trials_of(earlier[ref])!r}"
                raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: {key} = "
                                      f"{ref!r} is {kind_of}, which has no space of its own")
            if key != "of" and earlier[ref].kind == "test" and settings.get("select") != "test":
                raise PairsearchError(
                    f"experiment {name!r}, stage {stage_name!r}: {key} = {ref!r} would choose "
                    "by test accuracy; choose from a CV stage, or write select = \"test\" to "
                    "reproduce a report that chose on its test pairs")
        if kind == "retest" and "of" not in settings:
            raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: a retest needs "
                                  "of = \"STAGE\"")
        if kind != "retest" and not (SPACE_KEYS & set(settings)) and "best_of" not in settings \
                and "of" not in settings:
            raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: no space "
                                  "(space = NAME, [params] or best_of = STAGE)")
        stages.append(Stage(stage_name, kind, settings))
    by_name = {s.name: s for s in stages}
    for stage in stages:
        _check_row_links(name, stage.name, stage.get("reported") or {}, by_name)
    return Experiment(prefix or (f"{name}-quick" if quick else name),
                      str(document.get("description", "")), tuple(stages),
                      dict(document.get("report", {})), document.get("companion_of"))


def describe(experiment: Experiment) -> str:
    """One line per stage: name, kind and its main settings."""
    lines = [f"{experiment.name}: {experiment.description}"]
    for stage in experiment.stages:
        keys = {k: v for k, v in stage.settings.items()
                if k not in ("params", "variants", "fixed", "description", "reported")}
        lines.append(f"  {stage.name} ({stage.kind}): {json.dumps(keys, sort_keys=True)}")
    return "\n".join(lines)
