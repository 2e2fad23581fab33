"""Search spaces as data: a TOML ``[params]`` table of dimensions and their value lists.

::

    [params]
    model = ["siamese_aux", "twin_aux"]
    lr = [1e-3, 1e-2]
    lambda = [0.2, 0.9]

    [fixed]            # optional: settings shared by every cell
    batch_size = 50

A dimension is ``model`` or any option ``pairsearch evaluate --set`` accepts.
Every value is checked up front against the model registry and the option
types. A cell (one value per dimension) becomes a ``Config`` by keeping the
options its model has: ``lambda`` in a space with ``mlp`` is simply ignored
for the ``mlp`` cells (and such cells share one result, see ``Config.key``).

A *conditional* space names architecture families instead of one ``model`` list::

    [params]            # shared: each family takes the ones its model reads
    lr = [1e-3, 3e-3]
    lambda = [0.5, 1.0]

    [families.cnn3]     # a list is a dimension of this family only
    model = "r004_siamese_cnn3"
    head = ["logits_linear", "probs_mlp"]

Its cells hold ``family``, the shared dimensions the family's model reads (no
``lambda`` for a model without digit heads) and the family's own dimensions,
stored as ``FAMILY.OPTION`` (``cnn3.head``): a parameter exists only where it is read,
so no two cells train the same thing. TPE sees this structure through Optuna's
define-by-run (``suggest``); the grid enumerates each family's own product; the
genetic algorithm keeps one gene per dimension of every family (``params``) and
``cell_at`` reads only the genes of the family its ``family`` gene names.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional

import optuna

from pairsearch.errors import PairsearchError
from pairsearch.evaluation import Config, ignored_train_options, train_options
from pairsearch.models import count_parameters, create_model, model_entry
from pairsearch.names import BUDGET_TABLE
from pairsearch.toml_files import read_toml, shipped

Cell = dict[str, Any]
"""One value per dimension, as Optuna stores it (lists written as ``"16,32"``)."""

FAMILY = "family"
"""The dimension that chooses a conditional space's family."""


@dataclass(frozen=True)
class Family:
    """One architecture family of a conditional space.

    Attributes:
        settings: The model and the options fixed for this family.
        params: This family's own dimensions: option → values (stored as ``NAME.OPTION``).
    """

    settings: Mapping[str, Any]
    params: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


def _storable(value: Any) -> Any:
    """Optuna categorical choices must be None, bool, int, float or str."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value


@dataclass(frozen=True)
class SearchSpace:
    """Dimensions, each with its list of values, plus fixed settings.

    Attributes:
        name: Short name (file stem), used in default study names.
        params: Dimension → values, in file order.
        fixed: Settings shared by every cell.
        variants: Named bundles of settings (``[variants.NAME]`` tables); when given,
            ``variant`` is the first dimension and a cell's variant settings apply on top
            of ``fixed``. For comparisons of architectures that are not a product of
            options (report 000's model_1, model_1 WS, model_2 AUX1, ...).
        budget: (low, high) trainable parameters; cells whose network falls outside are
            not part of the space (report 003's 65k–75k architecture search).
        families: Architecture families of a conditional space (see the module
            docstring); when given, ``params`` holds every dimension of every family:
            ``family`` first, then the shared ones, then each family's ``NAME.OPTION``.
    """

    name: str
    params: Mapping[str, tuple[Any, ...]]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    budget: Optional[tuple[int, int]] = None
    families: Mapping[str, Family] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate(self)
        if self.families:
            object.__setattr__(self, "_active", {name: _active_dims(self, name)
                                                 for name in self.families})

    @property
    def size(self) -> int:
        """Number of cells (within the budget, if any)."""
        if self.budget is not None:
            return len(self._in_budget())
        if self.families:
            return sum(math.prod(len(self.params[d]) for d in self.active(name)[1:])
                       for name in self.families)
        return math.prod(len(values) for values in self.params.values())

    def active(self, family: str) -> list[str]:
        """The dimensions a family's cells hold, ``family`` first (conditional spaces)."""
        return self.__dict__["_active"][family]

    def _product(self) -> Iterator[Cell]:
        if self.families:
            for family in self.families:
                names = self.active(family)[1:]
                for combo in itertools.product(*(self.params[d] for d in names)):
                    yield {FAMILY: family, **dict(zip(names, combo))}
            return
        names = list(self.params)
        for combo in itertools.product(*self.params.values()):
            yield dict(zip(names, combo))

    def _in_budget(self) -> list[Cell]:
        cached = self.__dict__.get("_budget_cells")
        if cached is None:
            low, high = self.budget  # type: ignore[misc]
            counts: dict[str, int] = {}
            cached = []
            for cell in self._product():
                config = self.config(cell)
                key = json.dumps([config.model, dict(config.model_options)], sort_keys=True)
                if key not in counts:
                    counts[key] = count_parameters(
                        create_model(config.model, **config.model_options))
                if low <= counts[key] <= high:
                    cached.append(cell)
            object.__setattr__(self, "_budget_cells", cached)
        return cached

    def cells(self) -> Iterator[Cell]:
        """Every cell once, in a fixed order (the last dimension varies fastest)."""
        if self.budget is not None:
            yield from (dict(cell) for cell in self._in_budget())
        else:
            yield from self._product()

    def cell_at(self, genes: list[int]) -> Cell:
        """The cell whose value indices are ``genes`` (one per dimension); in a conditional
        space, only the genes of the family the ``family`` gene names count."""
        cell = {name: values[g] for (name, values), g in zip(self.params.items(), genes)}
        if self.families:
            return {name: cell[name] for name in self.active(cell[FAMILY])}
        return cell

    def suggest(self, trial: optuna.Trial) -> Cell:
        """Define-by-run sampling of a cell: ``family`` first, then only what it reads.

        A queued trial (``enqueue_trial``) gets its queued values back.
        """
        if not self.families:
            return {name: trial.suggest_categorical(name, list(values))
                    for name, values in self.params.items()}
        family = trial.suggest_categorical(FAMILY, list(self.families))
        cell = {FAMILY: family}
        for name in self.active(str(family))[1:]:
            cell[name] = trial.suggest_categorical(name, list(self.params[name]))
        return cell

    def settings(self, cell: Mapping[str, Any]) -> dict[str, Any]:
        """Everything a cell sets: fixed settings, then its variant's (or family's), then its
        own values."""
        settings = dict(self.fixed)
        if self.families:
            family = cell.get(FAMILY)
            if family not in self.families:
                raise PairsearchError(f"cell {dict(cell)} names no family of the space; "
                                      f"valid: {', '.join(self.families)}")
            settings.update(self.families[str(family)].settings)
            settings.update({k.split(".", 1)[-1]: v for k, v in cell.items() if k != FAMILY})
            return settings
        if "variant" in cell and self.variants:
            settings.update(self.variants[cell["variant"]])
        settings.update({k: v for k, v in cell.items() if k != "variant" or not self.variants})
        return settings

    def config(self, cell: Mapping[str, Any]) -> Config:
        """The configuration a cell trains (options its model lacks are dropped).

        Raises:
            PairsearchError: If the cell has no model or a value is invalid.
        """
        settings = self.settings(cell)
        model = settings.pop("model", None)
        if model is None:
            raise PairsearchError("search space sets no 'model' (a dimension or in [fixed])")
        entry = model_entry(str(model))
        known = set(entry.options) | set(train_options())
        return Config.from_settings(str(model), {k: v for k, v in settings.items() if k in known})

    def to_json(self) -> str:
        """Canonical JSON of the space (stored with a study to detect a changed space)."""
        document: dict[str, Any] = {"params": {k: list(v) for k, v in self.params.items()},
                                    "fixed": dict(self.fixed)}
        if self.variants:
            document["variants"] = {k: dict(v) for k, v in self.variants.items()}
            document["params"].pop("variant")  # implied by the variants
        if self.budget is not None:
            document[BUDGET_TABLE] = {"params": list(self.budget)}
        if self.families:
            for name in [FAMILY, *(f"{f}.{o}" for f, fam in self.families.items()
                                   for o in fam.params)]:
                document["params"].pop(name)
            document["families"] = {
                name: {**family.settings, **{k: list(v) for k, v in family.params.items()}}
                for name, family in self.families.items()}
        return json.dumps(document, sort_keys=True)


def _reads(model: str, family: Family, dim: str) -> bool:
    """Whether a shared dimension matters to a family: an option of its model or a
    training option it reads, not fixed by the family itself."""
    if dim in family.settings:
        return False
    entry = model_entry(model)
    if dim in entry.options:
        return True
    return dim in train_options() and dim not in ignored_train_options(model)


def _active_dims(space: SearchSpace, name: str) -> list[str]:
    family = space.families[name]
    model = str(family.settings["model"])
    own = [f"{name}.{option}" for option in family.params]
    shared = [d for d in space.params if d != FAMILY and "." not in d
              and _reads(model, family, d)]
    return [FAMILY, *shared, *own]


def _models_of(space: SearchSpace) -> list[str]:
    models = list(space.params.get("model") or ([space.fixed["model"]] if "model" in space.fixed
                                                 else []))
    models += [v["model"] for v in space.variants.values() if "model" in v]
    models += [f.settings["model"] for f in space.families.values() if "model" in f.settings]
    if not models:
        raise PairsearchError("search space sets no 'model' (a dimension, in [fixed] or in "
                              "every variant)")
    for model in models:
        model_entry(str(model))  # raises with the list of valid models
    return sorted({str(m) for m in models})


def _check_values(dim: str, values: tuple[Any, ...], models: list[str]) -> None:
    """Every value of ``dim`` parses as an option of the training or of one of ``models``."""
    if not values:
        raise PairsearchError(f"search space: dimension {dim!r} has no values")
    if len(set(map(_storable, values))) != len(values):
        raise PairsearchError(f"search space: dimension {dim!r} repeats a value")
    if dim == "model":
        return
    training = train_options()
    if dim in training:
        options = [training[dim]]
    else:
        options = [model_entry(m).options[dim] for m in models if dim in model_entry(m).options]
        if not options:
            raise PairsearchError(
                f"search space: unknown dimension {dim!r}: not a training option nor an "
                f"option of {', '.join(models)}")
    for value in values:
        if isinstance(value, dict):
            raise PairsearchError(f"search space: bad value {value!r} for {dim!r}")
        for option in options:
            try:
                option.parse(value)
            except PairsearchError as error:
                raise PairsearchError(f"search space: dimension {dim!r}: {error}") from None


def _validate_families(space: SearchSpace) -> None:
    """Every family names a model, sets and varies only options it reads, and every
    shared dimension is read by some family."""
    if space.variants:
        raise PairsearchError("search space: [families] and [variants] cannot be combined")
    if "model" in space.params or "model" in space.fixed:
        raise PairsearchError("search space: with [families], each family names its model "
                              "(no 'model' in [params] or [fixed])")
    expected = [FAMILY, *(d for d in space.params if d != FAMILY and "." not in d),
                *(f"{f}.{o}" for f, fam in space.families.items() for o in fam.params)]
    if list(space.params) != expected:
        raise PairsearchError("search space: 'family' is a reserved dimension name, and "
                              "shared dimensions take no '.'")
    shared = [d for d in space.params if d != FAMILY and "." not in d]
    for name, family in space.families.items():
        model = family.settings.get("model")
        if not isinstance(model, str):
            raise PairsearchError(f"search space: family {name!r} names no model "
                                  "(model = \"NAME\")")
        entry = model_entry(model)
        known = set(entry.options) | (set(train_options()) - ignored_train_options(model))
        for key, value in [*family.settings.items(), *family.params.items()]:
            if key == "model":
                continue
            if key not in known:
                raise PairsearchError(
                    f"search space: family {name!r}: model {model!r} does not read {key!r}; "
                    f"it reads: {', '.join(sorted(known))}")
            values = value if key in family.params else (value,)
            if key in family.params and key in train_options():
                raise PairsearchError(f"search space: family {name!r}: training option "
                                      f"{key!r} can be fixed here but searched only in "
                                      "[params]")
            try:
                _check_values(key, tuple(values), [model])
            except PairsearchError as error:
                raise PairsearchError(f"{error} (family {name!r})") from None
    for dim in shared:
        if not any(_reads(str(f.settings["model"]), f, dim) for f in space.families.values()):
            raise PairsearchError(f"search space: no family reads shared dimension {dim!r}")


def _validate(space: SearchSpace) -> None:
    if not space.params:
        raise PairsearchError(f"search space {space.name!r} has no dimensions in [params]")
    if space.families:
        _validate_families(space)
        for dim in space.params:
            if dim != FAMILY and "." not in dim:
                _check_values(dim, space.params[dim], _models_of(space))
        for key, value in space.fixed.items():
            _check_values(key, (value,), _models_of(space))
        if space.budget is not None:
            raise PairsearchError("search space: [budget] is not supported with [families]")
        return
    overlap = sorted(set(space.params) & set(space.fixed))
    if overlap:
        raise PairsearchError(f"search space: {overlap[0]!r} is both in [params] and [fixed]")
    if space.variants:
        if tuple(space.params.get("variant", ())) != tuple(space.variants):
            raise PairsearchError("search space: 'variant' is a reserved dimension name")
        for name, settings in space.variants.items():
            model = settings.get("model", space.fixed.get("model"))
            models = [str(model)] if model is not None else _models_of(space)
            for key, value in settings.items():
                if key in space.params:
                    raise PairsearchError(f"search space: variant {name!r} sets {key!r}, "
                                          "which is also a dimension")
                try:
                    _check_values(key, (value,), models)
                except PairsearchError as error:
                    raise PairsearchError(f"{error} (variant {name!r})") from None
    models = _models_of(space)
    if "model" in space.params and any("model" in v for v in space.variants.values()):
        raise PairsearchError("search space: 'model' is both a dimension and set by a variant")
    for dim, values in space.params.items():
        if dim != "variant" or not space.variants:
            _check_values(dim, values, models)
    for key, value in space.fixed.items():
        _check_values(key, (value,), models)
    if space.budget is not None:
        low, high = space.budget
        if not 0 <= low <= high:
            raise PairsearchError(f"search space: bad [budget] params {list(space.budget)}: "
                                  "expected [low, high] with 0 <= low <= high")


def _expand(dim: str, values: Any) -> list[Any]:
    """A dimension's value list; ``{choose = [...], length = n}`` means every n-tuple of them."""
    if isinstance(values, dict):
        if set(values) != {"choose", "length"} or not isinstance(values["choose"], list) \
                or not isinstance(values["length"], int) or values["length"] < 1:
            raise PairsearchError(f"search space: dimension {dim!r}: expected a list of values "
                                  "or {choose = [...], length = N}")
        return [list(combo) for combo in
                itertools.product(values["choose"], repeat=values["length"])]
    if not isinstance(values, list):
        raise PairsearchError(f"search space: dimension {dim!r} must be a list of values, "
                              f"got {values!r}")
    return values


def space_from_dict(name: str, document: Mapping[str, Any]) -> SearchSpace:
    """Build a space from a parsed TOML document.

    Raises:
        PairsearchError: On a missing or malformed ``[params]`` table or a bad value.
    """
    unknown = sorted(set(document) - {"params", "fixed", "variants", BUDGET_TABLE, "description",
                                      "families"})
    if unknown:
        raise PairsearchError(f"search space {name!r}: unknown table {unknown[0]!r} "
                              "(expected [params] and optionally [fixed], [variants.NAME], "
                              "[families.NAME], [budget])")
    if "families" in document:
        return _conditional_from_dict(name, document)
    variants = document.get("variants", {})
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise PairsearchError(f"search space {name!r}: variants must be [variants.NAME] tables")
    params = document.get("params", {} if variants else None)
    if not isinstance(params, dict):
        raise PairsearchError(f"search space {name!r} has no [params] table")
    dims: dict[str, tuple[Any, ...]] = {}
    if variants:
        if "variant" in params:
            raise PairsearchError("search space: 'variant' is a reserved dimension name")
        dims["variant"] = tuple(variants)
    for dim, values in params.items():
        dims[dim] = tuple(_storable(v) for v in _expand(dim, values))
    fixed = {k: _storable(v) for k, v in dict(document.get("fixed", {})).items()}
    budget = None
    if BUDGET_TABLE in document:
        table = document[BUDGET_TABLE]
        bounds = table.get("params") if isinstance(table, dict) else None
        if not (isinstance(bounds, list) and len(bounds) == 2
                and all(isinstance(b, int) for b in bounds)):
            raise PairsearchError(f"search space {name!r}: [budget] needs params = [low, high] "
                                  "(trainable parameters)")
        budget = (bounds[0], bounds[1])
    return SearchSpace(name, dims, fixed,
                       {k: {key: _storable(v) for key, v in settings.items()}
                        for k, settings in variants.items()}, budget)


def _conditional_from_dict(name: str, document: Mapping[str, Any]) -> SearchSpace:
    """A space with ``[families.NAME]`` tables (see the module docstring)."""
    tables = document["families"]
    if not isinstance(tables, dict) or not tables \
            or not all(isinstance(t, dict) for t in tables.values()):
        raise PairsearchError(f"search space {name!r}: families must be [families.NAME] "
                              "tables")
    params = document.get("params", {})
    if not isinstance(params, dict):
        raise PairsearchError(f"search space {name!r}: [params] must be a table")
    families = {}
    dims: dict[str, tuple[Any, ...]] = {FAMILY: tuple(tables)}
    for dim, values in params.items():
        if dim == FAMILY or "." in dim:
            raise PairsearchError("search space: 'family' is a reserved dimension name, and "
                                  "shared dimensions take no '.'")
        dims[dim] = tuple(_storable(v) for v in _expand(dim, values))
    for family, table in tables.items():
        if "." in family:
            raise PairsearchError(f"search space: family name {family!r} takes no '.'")
        own = {k: tuple(_storable(v) for v in _expand(k, values))
               for k, values in table.items() if isinstance(values, (list, dict))}
        settings = {k: _storable(v) for k, v in table.items() if k not in own}
        families[family] = Family(settings, own)
    for family, spec in families.items():
        dims.update({f"{family}.{k}": v for k, v in spec.params.items()})
    fixed = {k: _storable(v) for k, v in dict(document.get("fixed", {})).items()}
    return SearchSpace(name, dims, fixed, families=families)


def shipped_spaces() -> list[str]:
    """Names of the spaces shipped with pairsearch (``--space NAME``)."""
    return shipped("spaces")


def load_space(spec: str | None) -> SearchSpace:
    """A shipped space by name (default ``report002``) or a TOML file by path.

    Raises:
        PairsearchError: If the file is missing, not TOML, or the space is invalid.
    """
    name, document = read_toml(spec or "report002", "spaces", "search space")
    return space_from_dict(name, document)

