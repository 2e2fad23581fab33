"""Running an experiment: each stage in order, each into its own resumable study."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import optuna

from pairsearch.errors import PairsearchError, StudyOwned
from pairsearch.experiments.chaining import chained_sources, stage_space, study_name
from pairsearch.experiments.schema import Experiment, Stage, reads_trials_of, stage_options
from pairsearch.names import DEFAULT_SOURCE
from pairsearch.search.driver import SearchSummary
from pairsearch.search.space import SearchSpace
from pairsearch.search.store.queries import retest_study_name
from pairsearch.search.strategies import run_strategy
from pairsearch.search.strategies.retest import retest
from pairsearch.search.types import SearchSettings
from pairsearch.search.workers import NEVER, StopRequest

OWNER_POLL_SECONDS = 5.0
"""How often a worker waiting for another's GA stage looks again."""


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
    data: str = DEFAULT_SOURCE
    device: str = "auto"
    precision: str = "auto"
    progress: bool = True


def stage_study_name(experiment: Experiment, stage: Stage) -> str:
    """The study holding a stage's results (a retest's is its source's retest study; a
    test stage that reads another's trials, that stage's study)."""
    if stage.kind == "retest":
        return retest_study_name(study_name(experiment, Stage(stage.get("of"), "grid")))
    source = reads_trials_of(stage)
    if source is not None:
        return study_name(experiment, Stage(source, "test"))
    return study_name(experiment, stage)


def stage_settings(stage: Stage, options: RunOptions) -> SearchSettings:
    """The protocol of a search or test stage."""
    test = stage.kind == "test"
    return SearchSettings(
        folds=int(stage.get("folds", 3)), epochs=stage.get("epochs"), seed=options.seed,
        data=options.data, device=options.device, precision=options.precision,
        train_pairs=int(stage.get("train_pairs", 1000)),
        test_pairs=int(stage.get("test_pairs", 1000)), kind="test" if test else "cv",
        repeats=int(stage.get("repeats", 1)), draws=int(stage.get("draws", 1)) if test else 1,
        inputs=str(stage.get("inputs", "standardised")),
        # Only a stage that asks for it, or a table that reports it, pays for the forward
        # pass over the training pairs.
        train_accuracy=bool(stage.get("train_accuracy")) or any(
            figures.get("metric") == "train_accuracy"
            for figures in (stage.get("reported") or {}).values()))


def _run_owned(run: Callable[[], SearchSummary], stop: StopRequest,
               report: Callable[[str], None]) -> Optional[SearchSummary]:
    """``run()``, waiting while another live process owns the study (a GA has one owner:
    another worker of this experiment may be running the stage); ``None`` if stopped."""
    waiting = False
    while not stop.requested:
        try:
            return run()
        except StudyOwned as owned:
            if not waiting:
                report(f"waiting: {owned}")
                waiting = True
            time.sleep(OWNER_POLL_SECONDS)
    return None


def run_experiment(experiment: Experiment, storage: optuna.storages.BaseStorage,
                   options: RunOptions, stop: Optional[StopRequest] = None,
                   report: Callable[[str], None] = print,
                   only: Optional[Sequence[str]] = None) -> list[str]:
    """Run (or resume) every stage in order, or the stages named in ``only``; returns the
    studies written.

    A stage left out still lends its space to the stages chained from it, when its own
    sources are stored (a stage whose source is neither stored nor run is refused).

    Raises:
        PairsearchError: On a bad stage, a chained stage whose source has no results, or a
            study made with other settings.
    """
    stop = stop or NEVER
    sources = chained_sources(experiment, only) if only is not None else set()
    spaces: dict[str, SearchSpace] = {}
    studies = []
    for stage in experiment.stages:
        if stop.requested:
            break
        if only is not None and stage.name not in only:
            if stage.name in sources:
                _lend_space(experiment, stage, storage, spaces)
            continue
        name = stage_study_name(experiment, stage)
        source = reads_trials_of(stage)
        if source is not None:
            report(f"== {experiment.name}: stage {stage.name} reads stage {source}'s trials "
                   f"(study {name}): nothing to train")
            continue
        report(f"== {experiment.name}: stage {stage.name} ({stage.kind}) -> study {name}")
        if stage.kind == "retest":
            source = study_name(experiment, Stage(stage.get("of"), "grid"))
            table = retest(storage, source, int(stage.get("top", 3)), int(stage.get("folds", 10)),
                           int(stage.get("repeats", 10)), options.device, options.precision,
                           int(stage.get("draws", 1)), options.progress, stop,
                           int(stage.get("cv_repeats", 1)),
                           stage.get("per_architecture"))
            report(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
            studies.append(name)
            continue
        space = stage_space(experiment, stage, storage, spaces)
        spaces[stage.name] = space
        settings = stage_settings(stage, options)
        # Every search strategy by name, with the stage's options (a GA stage has one owner
        # process: another worker of this experiment may be running it, so wait for it).
        summary = _run_owned(lambda: run_strategy(stage.kind, space, settings, storage, name,
                                                  stage_options(stage), options.progress,
                                                  stop),
                             stop, report)
        if summary is None:  # stopped while another process ran the stage
            break
        studies.append(name)
        report(f"{summary.trials} trials; trained {summary.evaluated}, reused "
               f"{summary.reused}, failed {summary.failed}; best {summary.best_value}")
    return studies


def _lend_space(experiment: Experiment, stage: Stage, storage: optuna.storages.BaseStorage,
                spaces: dict[str, SearchSpace]) -> None:
    """Record a skipped source stage's space for the stages chained from it, where it can be
    made (a stage chained from one with no stored results has none; its dependants are
    refused by ``stage_space``)."""
    if stage.kind == "retest":
        return
    try:
        spaces[stage.name] = stage_space(experiment, stage, storage, spaces)
    except PairsearchError:
        pass
