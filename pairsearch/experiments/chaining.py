"""How a stage's space follows from earlier stages' results.

- ``best_of = "STAGE"``: the stage's cells are the best configuration of STAGE for
  each of its variants (or models), e.g. report 000's 20 test runs of each model with
  the settings its grid found;
- ``base = "STAGE"``: each variant starts from the best settings STAGE found for the
  variant of the same name (or the one named by the variant's ``inherit``; where STAGE's
  space has no variants, for the model of that name, or ``all``: its overall best), e.g.
  report 003's activation study on the widths its architecture search chose.

"Best" is the highest value of the earlier stage, so a chain chooses by K-fold CV on
the training pairs; chaining from a test stage (which would choose by test accuracy)
must be declared with ``select = "test"`` and is kept for reproducing a report that
chose that way (``experiments.schema``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import optuna

from pairsearch.errors import PairsearchError
from pairsearch.experiments.schema import Experiment, Stage
from pairsearch.names import BUDGET_TABLE
from pairsearch.search.space import SearchSpace, load_space, space_from_dict
from pairsearch.search.store.queries import best_by_group

CHAIN_KEYS = ("best_of", "base")  # the settings by which a stage reads an earlier one's results


def study_name(experiment: Experiment, stage: Stage) -> str:
    """The study a stage writes to."""
    return f"{experiment.name}-{stage.name}"


def load_stage_study(storage: optuna.storages.BaseStorage, experiment: Experiment,
                     stage_name: str) -> optuna.Study:
    """The study an earlier stage wrote.

    Raises:
        PairsearchError: If that stage has not run yet.
    """
    name = f"{experiment.name}-{stage_name}"
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise PairsearchError(f"stage {stage_name!r} has not run yet (no study {name!r})") \
            from None


def chained_sources(experiment: Experiment, names: Sequence[str]) -> set[str]:
    """The stages that the named stages chain from (``CHAIN_KEYS``), transitively."""
    by_name = {stage.name: stage for stage in experiment.stages}
    sources: set[str] = set()
    pending = list(names)
    while pending:
        stage = by_name[pending.pop()]
        for key in CHAIN_KEYS:
            source = stage.get(key)
            if source and source not in sources:
                sources.add(source)
                pending.append(source)
    return sources


def stage_space(experiment: Experiment, stage: Stage, storage: optuna.storages.BaseStorage,
                spaces: Mapping[str, SearchSpace]) -> SearchSpace:
    """The stage's space, with ``best_of`` / ``base`` resolved from earlier stages.

    Raises:
        PairsearchError: If an earlier stage has no result to chain from.
    """
    name = study_name(experiment, stage)
    for key in CHAIN_KEYS:
        if stage.get(key) and stage.get(key) not in spaces:
            raise PairsearchError(f"stage {stage.name!r} chains from stage {stage.get(key)!r}, "
                                  "which has no stored results: run that stage first")
    if stage.get("best_of"):
        source = spaces[stage.get("best_of")]
        group_key = "variant" if source.variants else "model"
        study = load_stage_study(storage, experiment, stage.get("best_of"))
        variants = {group: source.settings(params)
                    for group, params in sorted(best_by_group(study, group_key).items())}
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
    document = {key: stage.get(key) for key in ("params", "fixed", "variants", BUDGET_TABLE)
                if stage.get(key) is not None}
    if stage.get("base"):
        base_space = spaces[stage.get("base")]
        study = load_stage_study(storage, experiment, stage.get("base"))
        # Grouped as best_of groups: by variant, else by model (a space whose model is
        # a dimension, as report 002's), else one group "all".
        bests = best_by_group(study, "variant" if base_space.variants else "model")
        variants = {}
        for variant, settings in dict(document.get("variants", {"all": {}})).items():
            settings = dict(settings)
            inherit = settings.pop("inherit", variant)
            if inherit not in bests:
                raise PairsearchError(f"stage {stage.name!r}: stage {stage.get('base')!r} has "
                                      f"no result for variant {inherit!r}")
            variants[variant] = {**base_space.settings(bests[inherit]), **settings}
        document["variants"] = variants
        if not document.get("params"):
            document["params"] = {}
        return _with_variant_dimension(name, document)
    return space_from_dict(name, document)


def _with_variant_dimension(name: str, document: dict[str, Any]) -> SearchSpace:
    """A space whose variants may be its only dimension."""
    fixed = dict(document.get("fixed", {}))
    # Settings a dimension varies, or that [fixed] sets, are not the variants' to set.
    dims = set(document.get("params", {})) | set(fixed)
    document = {**document, "variants": {v: {k: val for k, val in s.items() if k not in dims}
                                         for v, s in document["variants"].items()}}
    return space_from_dict(name, document)
