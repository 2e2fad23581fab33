"""Report 002's genetic algorithm with a diversity bonus, on DEAP.

An individual is a list of genes, one index into each dimension's value list.
Generation 0 is random. Each generation every individual is evaluated (stored
results are reused, so survivors cost nothing), ranked by

    fitness = CV accuracy + diversity × individuality,

and the top ``survivors`` fraction is kept; the best individual by raw accuracy
is always kept. Survivors breed the rest: uniform crossover of two random
parents (``tools.cxUniform``) then mutation (``tools.mutUniformInt``).

Individuality (report 002): for individual n with values v_p,

    I_n = 1 / Σ_p 1 / (N − N_{v_p})

where N is the population size and N_{v_p} the number of individuals sharing
n's value of parameter p (n included), so N − N_{v_p} counts the individuals
that differ from n on p. Where a value is shared by the whole population,
N − N_v = 0 and its term 1/0 is infinite, so I_n = 0: the limit of the formula
as the others converge on n's value. ``individuality="normalised"`` divides
I_n by its maximum (N − 1)/|P| (every value unique), giving [0, 1].

Randomness comes from ``random.Random`` streams derived from the seed and the
generation; DEAP's operators draw from the ``random`` module, so they run
inside ``_isolated_random``, which restores the global state afterwards.
A run stores each individual of each generation as a trial (attributes
``generation``, ``individual``, ``genes``, ``individuality``, ``fitness``),
so a resumed run rebuilds its last complete generation from the study.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import optuna
from deap import base, creator, tools
from optuna.trial import TrialState
from tqdm import tqdm

from pairsearch.errors import PairsearchError
from pairsearch.search.runner import Runner, SearchSettings, distributions
from pairsearch.search.space import SearchSpace
from pairsearch.search.storage import GRACE_SECONDS, open_study
from pairsearch.search.strategies import SearchSummary, summarize
from pairsearch.search.workers import (
    HOST,
    NEVER,
    StopRequest,
    alive,
    enqueue_owned,
    recover_dead_trials,
    worker_id,
)

if not hasattr(creator, "PairsearchFitness"):
    creator.create("PairsearchFitness", base.Fitness, weights=(1.0,))
    creator.create("PairsearchIndividual", list, fitness=creator.PairsearchFitness)

INDIVIDUALITY = ("raw", "normalised")


@dataclass(frozen=True)
class GeneticSettings:
    """Parameters of the genetic algorithm.

    Attributes:
        pop: Population size N (≥ 2).
        gens: Generations (≥ 1).
        survivors: Fraction of the population kept each generation, in (0, 1].
        diversity: Weight of the individuality bonus (report 002: 0.75).
        individuality: ``raw`` (report 002's formula) or ``normalised`` (divided by its
            maximum).
        mutation: Probability that each gene of a child is redrawn.

    Raises:
        PairsearchError: If a value is out of range (the message names it).
    """

    pop: int = 10
    gens: int = 30
    survivors: float = 0.6
    diversity: float = 0.75
    individuality: str = "raw"
    mutation: float = 0.1

    def __post_init__(self) -> None:
        if self.pop < 2:
            raise PairsearchError(f"bad value {self.pop} for --pop: needs at least 2")
        if self.gens < 1:
            raise PairsearchError(f"bad value {self.gens} for --gens: needs at least 1")
        if not 0 < self.survivors <= 1:
            raise PairsearchError(f"bad value {self.survivors} for --survivors: must be in (0, 1]")
        if self.diversity < 0:
            raise PairsearchError(f"bad value {self.diversity} for --diversity: must be >= 0")
        if self.individuality not in INDIVIDUALITY:
            raise PairsearchError(f"bad value {self.individuality!r} for --individuality: "
                                  f"valid: {', '.join(INDIVIDUALITY)}")
        if not 0 <= self.mutation <= 1:
            raise PairsearchError(f"bad value {self.mutation} for --mutation: must be in [0, 1]")


def individuality(population: Sequence[Sequence[int]], normalised: bool = False,
                 sizes: Sequence[int] | None = None) -> list[float]:
    """Report 002's individuality of each individual (see the module docstring).

    Args:
        population: Each individual's genes.
        normalised: Divide by the maximum, (N − 1)/|P|.
        sizes: Values per dimension; a dimension with a single value, on which no
            individual can differ, is left out of the sum (otherwise it would make
            every individuality 0).
    """
    size = len(population)
    genes = np.asarray(population)
    if sizes is not None:
        genes = genes[:, [i for i, n in enumerate(sizes) if n > 1]]
    if genes.shape[1] == 0:
        return [0.0] * size
    scores = []
    for individual in genes:
        others = size - (genes == individual).sum(axis=0)  # per parameter: N − N_v
        if (others == 0).any():
            scores.append(0.0)
            continue
        value = 1.0 / float((1.0 / others).sum())
        if normalised:
            value /= (size - 1) / genes.shape[1]
        scores.append(value)
    return scores


@contextlib.contextmanager
def _isolated_random(rng: random.Random) -> Iterator[None]:
    """Let DEAP's operators draw from ``rng``'s state, leaving the global RNG untouched."""
    saved = random.getstate()
    random.setstate(rng.getstate())
    try:
        yield
    finally:
        rng.setstate(random.getstate())
        random.setstate(saved)


def _generation_rng(seed: int, generation: int) -> random.Random:
    return random.Random(int(np.random.SeedSequence([seed, 7919, generation])
                             .generate_state(1)[0]))


def _toolbox(space: SearchSpace, settings: GeneticSettings) -> base.Toolbox:
    sizes = [len(values) for values in space.params.values()]
    toolbox = base.Toolbox()
    toolbox.register("genes", lambda: [random.randrange(n) for n in sizes])
    toolbox.register("individual", tools.initIterate, creator.PairsearchIndividual,
                     toolbox.genes)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mate", tools.cxUniform, indpb=0.5)
    toolbox.register("mutate", tools.mutUniformInt, low=[0] * len(sizes),
                     up=[n - 1 for n in sizes], indpb=settings.mutation)
    return toolbox


def select_and_breed(population: list, accuracies: Sequence[float], fitnesses: Sequence[float],
                     settings: GeneticSettings, toolbox: base.Toolbox,
                     rng: random.Random) -> list:
    """The next generation: top survivors by fitness (best by accuracy always kept) + children.

    Args:
        population: Current individuals (lists of genes).
        accuracies: Raw accuracy of each.
        fitnesses: Fitness of each (accuracy + diversity × individuality).
        settings: GA parameters.
        toolbox: DEAP toolbox with ``mate`` and ``mutate``.
        rng: Random stream of this generation.

    Returns:
        The new population, survivors first.
    """
    for individual, fitness in zip(population, fitnesses):
        individual.fitness.values = (fitness,)
    keep = max(1, round(settings.survivors * len(population)))
    survivors = tools.selBest(population, keep)
    champion = population[int(np.argmax(accuracies))]
    if not any(s is champion for s in survivors):
        survivors[-1] = champion  # elitism on raw accuracy
    children = []
    with _isolated_random(rng):
        while keep + len(children) < len(population):
            mother, father = (random.sample(survivors, 2) if len(survivors) > 1
                              else (survivors[0], survivors[0]))
            child, _ = toolbox.mate(toolbox.clone(mother), toolbox.clone(father))
            (child,) = toolbox.mutate(child)
            del child.fitness.values
            children.append(child)
    return [toolbox.clone(s) for s in survivors] + children


def _stored_generations(study: optuna.Study) -> dict[int, dict[int, optuna.trial.FrozenTrial]]:
    generations: dict[int, dict[int, optuna.trial.FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False,
                                  states=(TrialState.COMPLETE, TrialState.FAIL)):
        if "generation" in trial.user_attrs and "fitness" in trial.user_attrs:
            generations.setdefault(trial.user_attrs["generation"], {})[
                trial.user_attrs["individual"]] = trial
    return generations


def _owner_alive(owner: dict) -> bool:
    host, _, pid = str(owner.get("worker", "")).rpartition(":")
    if host == HOST and pid.isdigit():
        return alive(int(pid))
    return time.time() - float(owner.get("beat", 0)) < GRACE_SECONDS


def _claim(study: optuna.Study) -> None:
    """Make this process the study's one GA owner, or refuse if a live one exists."""
    me = worker_id()
    owner = study.user_attrs.get("genetic_owner")
    if owner and owner.get("worker") != me and _owner_alive(owner):
        raise PairsearchError(
            f"genetic study {study.study_name!r} is being run by {owner['worker']}: a GA study "
            "has one owner, which breeds each generation from the last; a stopped or killed "
            "run is resumed by running the same command again")
    study.set_user_attr("genetic_owner", {"worker": me, "beat": time.time()})
    time.sleep(0.2)  # two processes starting at once: the last writer wins, the other leaves
    if study.user_attrs.get("genetic_owner", {}).get("worker") != me:
        raise PairsearchError(f"genetic study {study.study_name!r} was just claimed by "
                              f"{study.user_attrs['genetic_owner']['worker']}")


def run_genetic(space: SearchSpace, settings: SearchSettings, genetic: GeneticSettings,
                storage: optuna.storages.BaseStorage, study_name: str,
                progress: bool = True, stop: StopRequest = NEVER) -> SearchSummary:
    """Run (or resume) the genetic algorithm for ``genetic.gens`` generations.

    A GA study has one owner process at a time (study attribute
    ``genetic_owner``): each generation is bred from the complete previous one, so
    a second process on the same study is refused while the owner lives. A dead
    owner's study is taken over and resumed.

    Raises:
        PairsearchError: If the study exists with another space, protocol or GA settings,
            or another live process owns it.
    """
    if space.budget is not None:
        raise PairsearchError("the genetic algorithm breeds any combination of values; it "
                              "cannot keep to a parameter [budget] (use grid)")
    meta = {"strategy": "genetic", "space": space.to_json(),
            "protocol": {**settings.protocol_meta(), "pop": genetic.pop,
                         "survivors": genetic.survivors, "diversity": genetic.diversity,
                         "individuality": genetic.individuality, "mutation": genetic.mutation,
                         "strategy_seed": settings.search_seed}}
    study = open_study(storage, study_name, meta)
    _claim(study)
    try:
        return _evolve(space, settings, genetic, study, progress, stop)
    finally:
        study.set_user_attr("genetic_owner", None)


def _evolve(space: SearchSpace, settings: SearchSettings, genetic: GeneticSettings,
            study: optuna.Study, progress: bool, stop: StopRequest) -> SearchSummary:
    study_name = study.study_name
    recover_dead_trials(study)
    runner = Runner(space, settings, study)
    toolbox = _toolbox(space, genetic)
    dists = distributions(space)
    normalised = genetic.individuality == "normalised"

    stored = _stored_generations(study)
    complete = sorted(g for g, members in stored.items() if len(members) == genetic.pop)
    # Rebuild the generations deterministically from the seed; stored trials say
    # which individuals are already evaluated.
    with _isolated_random(_generation_rng(settings.search_seed, 0)):
        population = toolbox.population(n=genetic.pop)
    start = 0
    if complete:
        last = complete[-1]
        members = stored[last]
        population = [creator.PairsearchIndividual(members[i].user_attrs["genes"])
                      for i in range(genetic.pop)]
        accuracies = [members[i].value if members[i].value is not None else 0.0
                      for i in range(genetic.pop)]
        fitnesses = [members[i].user_attrs["fitness"] for i in range(genetic.pop)]
        population = select_and_breed(population, accuracies, fitnesses, genetic, toolbox,
                                      _generation_rng(settings.search_seed, last + 1))
        start = last + 1

    total = genetic.gens * genetic.pop
    bar = tqdm(total=total, initial=min(start * genetic.pop, total),
               desc=f"genetic {study_name}", unit="trial", disable=not progress,
               dynamic_ncols=True)
    best: Optional[float] = None
    with bar:
        for generation in range(start, genetic.gens):
            scores = individuality(population, normalised,
                                   [len(v) for v in space.params.values()])
            already = stored.get(generation, {})
            accuracies, fitnesses = [], []
            for index, (individual, bonus) in enumerate(zip(population, scores)):
                if index in already:
                    trial_done = already[index]
                    accuracy = trial_done.value if trial_done.value is not None else 0.0
                else:
                    cell = space.cell_at(list(individual))
                    enqueue_owned(study, cell)
                    trial = study.ask(dists)
                    # fitness is known only after the evaluation; a trial stores both
                    accuracy = _run_individual(runner, trial, cell, generation, index,
                                               list(individual), bonus, genetic.diversity)
                accuracies.append(accuracy)
                fitnesses.append(accuracy + genetic.diversity * bonus)
                study.set_user_attr("genetic_owner", {"worker": worker_id(), "beat": time.time()})
                if stop.requested:
                    return summarize(study, runner, stopped=True)
                best = accuracy if best is None else max(best, accuracy)
                bar.set_postfix(gen=generation, best=f"{best:.4f}")
                bar.update()
            if generation + 1 < genetic.gens:
                population = select_and_breed(population, accuracies, fitnesses, genetic,
                                              toolbox,
                                              _generation_rng(settings.search_seed, generation + 1))
    return summarize(study, runner)


def _run_individual(runner: Runner, trial: optuna.Trial, cell: dict, generation: int,
                    index: int, genes: list[int], bonus: float, diversity: float) -> float:
    # The fitness attribute depends on the accuracy, so the runner is asked for the
    # value first with the GA attributes set, then fitness is written before telling.
    attrs = {"generation": generation, "individual": index, "genes": genes,
             "individuality": bonus}
    value = runner.run(trial, cell, attrs, value_on_fail=0.0, before_tell=lambda acc: {
        "fitness": (acc if acc is not None else 0.0) + diversity * bonus})
    return value if value is not None else 0.0
