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
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping

from pairsearch.errors import PairsearchError
from pairsearch.evaluation import Config, train_options
from pairsearch.models import model_entry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Cell = dict[str, Any]
"""One value per dimension, as Optuna stores it (lists written as ``"16,32"``)."""


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
    """

    name: str
    params: Mapping[str, tuple[Any, ...]]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def size(self) -> int:
        """Number of cells."""
        size = 1
        for values in self.params.values():
            size *= len(values)
        return size

    def cells(self) -> Iterator[Cell]:
        """Every cell once, in a fixed order (the last dimension varies fastest)."""
        names = list(self.params)
        for combo in itertools.product(*self.params.values()):
            yield dict(zip(names, combo))

    def cell_at(self, genes: list[int]) -> Cell:
        """The cell whose value indices are ``genes`` (one per dimension)."""
        return {name: values[g] for (name, values), g in zip(self.params.items(), genes)}

    def config(self, cell: Mapping[str, Any]) -> Config:
        """The configuration a cell trains (options its model lacks are dropped).

        Raises:
            PairsearchError: If the cell has no model or a value is invalid.
        """
        settings = {**self.fixed, **cell}
        model = settings.pop("model", None)
        if model is None:
            raise PairsearchError("search space sets no 'model' (a dimension or in [fixed])")
        entry = model_entry(str(model))
        known = set(entry.options) | set(train_options())
        return Config.from_settings(str(model), {k: v for k, v in settings.items() if k in known})

    def to_json(self) -> str:
        """Canonical JSON of the space (stored with a study to detect a changed space)."""
        return json.dumps({"params": {k: list(v) for k, v in self.params.items()},
                           "fixed": dict(self.fixed)}, sort_keys=True)


def _models_of(space: SearchSpace) -> list[str]:
    models = space.params.get("model") or ([space.fixed["model"]] if "model" in space.fixed
                                           else [])
    if not models:
        raise PairsearchError("search space sets no 'model' (a dimension or in [fixed])")
    for model in models:
        model_entry(str(model))  # raises with the list of valid models
    return [str(m) for m in models]


def _validate(space: SearchSpace) -> None:
    if not space.params:
        raise PairsearchError(f"search space {space.name!r} has no dimensions in [params]")
    models = _models_of(space)
    training = train_options()
    overlap = sorted(set(space.params) & set(space.fixed))
    if overlap:
        raise PairsearchError(f"search space: {overlap[0]!r} is both in [params] and [fixed]")
    for dim, values in list(space.params.items()) + [(k, (v,)) for k, v in space.fixed.items()]:
        if not values:
            raise PairsearchError(f"search space: dimension {dim!r} has no values")
        if len(set(map(_storable, values))) != len(values):
            raise PairsearchError(f"search space: dimension {dim!r} repeats a value")
        if dim == "model":
            continue
        if dim in training:
            options = [training[dim]]
        else:
            options = [model_entry(m).options[dim] for m in models
                       if dim in model_entry(m).options]
            if not options:
                raise PairsearchError(
                    f"search space: unknown dimension {dim!r}: not a training option nor an "
                    f"option of {', '.join(models)}")
        for value in values:
            if isinstance(value, (dict,)):
                raise PairsearchError(f"search space: bad value {value!r} for {dim!r}")
            for option in options:
                try:
                    option.parse(value)
                except PairsearchError as error:
                    raise PairsearchError(f"search space: dimension {dim!r}: {error}") from None


def space_from_dict(name: str, document: Mapping[str, Any]) -> SearchSpace:
    """Build a space from a parsed TOML document.

    Raises:
        PairsearchError: On a missing or malformed ``[params]`` table or a bad value.
    """
    unknown = sorted(set(document) - {"params", "fixed", "description"})
    if unknown:
        raise PairsearchError(f"search space {name!r}: unknown table {unknown[0]!r} "
                              "(expected [params] and optionally [fixed])")
    params = document.get("params")
    if not isinstance(params, dict):
        raise PairsearchError(f"search space {name!r} has no [params] table")
    dims = {}
    for dim, values in params.items():
        if not isinstance(values, list):
            raise PairsearchError(f"search space: dimension {dim!r} must be a list of values, "
                                  f"got {values!r}")
        dims[dim] = tuple(_storable(v) for v in values)
    fixed = {k: _storable(v) for k, v in dict(document.get("fixed", {})).items()}
    return SearchSpace(name, dims, fixed)


def shipped_spaces() -> list[str]:
    """Names of the spaces shipped with pairsearch (``--space NAME``)."""
    folder = resources.files("pairsearch") / "spaces"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_space(spec: str | None) -> SearchSpace:
    """A shipped space by name (default ``report002``) or a TOML file by path.

    Raises:
        PairsearchError: If the file is missing, not TOML, or the space is invalid.
    """
    spec = spec or "report002"
    path = Path(spec)
    if not path.suffix and spec in shipped_spaces():
        text = (resources.files("pairsearch") / "spaces" / f"{spec}.toml").read_text()
        name = spec
    else:
        if not path.is_file():
            raise PairsearchError(f"search space {spec!r} not found: no such file, and not a "
                                  f"shipped space ({', '.join(shipped_spaces())})")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise PairsearchError(f"cannot read search space {spec}: {error}") from None
        name = path.stem
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PairsearchError(f"search space {spec} is not valid TOML: {error}") from None
    return space_from_dict(name, document)

