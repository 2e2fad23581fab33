"""The search strategies, one file each, and the one registry the CLI and experiments use.

Each strategy only proposes cells and observes outcomes (``base.Strategy``); the driver
(``search.driver``) runs the trials:

- ``grid``: every cell once (``test``: every cell with the test protocol);
- ``halving``: successive halving of the grid;
- ``tpe``: an Optuna sampler (TPE, random search, NSGA-II) with a pruner;
- ``genetic``: report 002's genetic algorithm on DEAP;
- ``retest``: report 002's second stage, the best configurations of a study measured
  again (it reads another study, so it has its own entry point, ``retest.retest``).

``create_strategy(kind, space, options)`` builds a strategy by name from its options
(``names.STRATEGY_OPTIONS``); ``run_strategy`` drives it. An option a strategy does not
take is refused, never dropped.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import optuna

from pairsearch.errors import BadValue, PairsearchError
from pairsearch.names import STRATEGY_OPTIONS
from pairsearch.search.driver import SearchSummary, drive, duplicate_of
from pairsearch.search.space import SearchSpace
from pairsearch.search.strategies.base import Strategy
from pairsearch.search.strategies.genetic import GeneticSettings, GeneticStrategy, run_genetic
from pairsearch.search.strategies.grid import GridStrategy, run_grid
from pairsearch.search.strategies.halving import HalvingStrategy, run_halving
from pairsearch.search.strategies.tpe import TpeStrategy, make_pruner, make_sampler, run_tpe
from pairsearch.search.types import SearchSettings
from pairsearch.search.workers import NEVER, StopRequest

__all__ = ["STRATEGY_OPTIONS", "GridStrategy", "HalvingStrategy", "GeneticStrategy",
           "Strategy", "TpeStrategy", "create_strategy", "duplicate_of", "make_pruner",
           "make_sampler", "run_genetic", "run_grid", "run_halving", "run_strategy",
           "run_tpe"]

_FACTORIES: dict[str, Callable[[SearchSpace, dict[str, Any]], Strategy]] = {
    "grid": lambda space, options: GridStrategy(space, "grid", **options),
    "test": lambda space, options: GridStrategy(space, "test"),
    "halving": lambda space, options: HalvingStrategy(space, **options),
    "tpe": lambda space, options: TpeStrategy(**options),
    "genetic": lambda space, options: GeneticStrategy(space, GeneticSettings(**options)),
}


def create_strategy(kind: str, space: SearchSpace,
                    options: Optional[Mapping[str, Any]] = None) -> Strategy:
    """The strategy ``kind`` over ``space`` with ``options`` (the others at their defaults).

    Raises:
        PairsearchError: On an unknown strategy, an option it does not take (the message
            lists those it takes), or a bad option value.
    """
    if kind not in _FACTORIES:
        raise BadValue("strategy", kind, f"valid: {', '.join(_FACTORIES)}")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    allowed = STRATEGY_OPTIONS[kind]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) if allowed else "none"
        raise PairsearchError(f"strategy {kind!r} does not take option {unknown[0]!r} "
                              f"(its options: {takes})")
    try:
        return _FACTORIES[kind](space, options)
    except TypeError as error:  # a value of the wrong type for a dataclass field
        raise PairsearchError(f"strategy {kind!r}: {error}") from None


def run_strategy(kind: str, space: SearchSpace, settings: SearchSettings,
                 storage: optuna.storages.BaseStorage | Callable[[], optuna.storages.BaseStorage],
                 study_name: str, options: Optional[Mapping[str, Any]] = None,
                 progress: bool = True, stop: StopRequest = NEVER,
                 batching: str = "auto") -> SearchSummary:
    """Run (or resume) strategy ``kind`` into study ``study_name`` (``driver.drive``).

    Raises:
        PairsearchError: As ``create_strategy`` and ``driver.drive``.
    """
    return drive(create_strategy(kind, space, options), space, settings, storage, study_name, progress, stop, batching)
