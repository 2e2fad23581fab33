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
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import optuna
from deap import base, creator, tools

from pairsearch.errors import BadValue, PairsearchError
from pairsearch.names import FITNESS, INDIVIDUALITY
from pairsearch.names import Attr
from pairsearch.search.driver import SearchSummary, drive
from pairsearch.search.space import SearchSpace
from pairsearch.search.store.queries import stored_generations
from pairsearch.search.strategies.base import Strategy
from pairsearch.search.strategies.tpe import make_pruner
from pairsearch.search.types import Outcome, Proposal, SearchSettings
from pairsearch.search.workers import NEVER, StopRequest, StudyLease
from pairsearch.seeds import generation_seed

if not hasattr(creator, "PairsearchFitness"):
    creator.create("PairsearchFitness", base.Fitness, weights=(1.0,))
    creator.create("PairsearchIndividual", list, fitness=creator.PairsearchFitness)


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
        halving: Stop a new individual's training early when its per-epoch validation
            accuracy is in the bottom of those at the same epoch (Optuna's successive
            halving pruner); its accuracy is then the one it had reached.
        min_epochs: With ``halving``, epochs every individual trains before it can stop.
        eta: With ``halving``, the reduction factor (each rung keeps the best 1/eta).
        fitness: ``bonus`` (report 002: accuracy + diversity × individuality), ``decaying``
            (the same with the weight falling linearly to 0 at the last generation: explore
            early, exploit late) or ``sharing`` (Goldberg's fitness sharing: accuracy divided
            by the individual's niche count, Σ_j max(0, 1 − d_ij / σ) over Hamming distances
            d with σ = half the dimensions; no bonus).

    Raises:
        PairsearchError: If a value is out of range (the message names it).
    """

    pop: int = 10
    gens: int = 30
    survivors: float = 0.6
    diversity: float = 0.75
    individuality: str = "raw"
    mutation: float = 0.1
    halving: bool = False
    min_epochs: int = 1
    eta: int = 3
    fitness: str = "bonus"

    def __post_init__(self) -> None:
        if self.pop < 2:
            raise BadValue("pop", self.pop, "needs at least 2")
        if self.gens < 1:
            raise BadValue("gens", self.gens, "needs at least 1")
        if not 0 < self.survivors <= 1:
            raise BadValue("survivors", self.survivors, "must be in (0, 1]")
        if self.diversity < 0:
            raise BadValue("diversity", self.diversity, "must be >= 0")
        if self.individuality not in INDIVIDUALITY:
            raise BadValue("individuality", self.individuality,
                           f"valid: {', '.join(INDIVIDUALITY)}")
        if not 0 <= self.mutation <= 1:
            raise BadValue("mutation", self.mutation, "must be in [0, 1]")
        if self.eta < 2:
            raise BadValue("eta", self.eta, "must be >= 2")
        if self.min_epochs < 1:
            raise BadValue("min_epochs", self.min_epochs, "must be >= 1")
        if self.fitness not in FITNESS:
            raise BadValue("fitness", self.fitness, f"valid: {', '.join(FITNESS)}")


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


def niche_counts(population: Sequence[Sequence[int]], sizes: Sequence[int]) -> list[float]:
    """Each individual's niche count for fitness sharing: Σ_j max(0, 1 − d_ij / σ), with d the
    Hamming distance over the dimensions that vary and σ half their number (at least 1)."""
    genes = np.asarray(population)[:, [i for i, n in enumerate(sizes) if n > 1]]
    sigma = max(1.0, genes.shape[1] / 2)
    distances = (genes[:, None, :] != genes[None, :, :]).sum(axis=2)
    return np.clip(1 - distances / sigma, 0, None).sum(axis=1).tolist()


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
    return random.Random(generation_seed(seed, generation))


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


def ranked_accuracy(outcome_or_trial: Outcome | optuna.trial.FrozenTrial) -> float:
    """The accuracy an individual is ranked by: its value (for one the pruner stopped, the
    accuracy it had reached), 0 for a failure."""
    value = outcome_or_trial.value
    return float(value) if value is not None else 0.0


class GeneticStrategy(Strategy):
    """Report 002's genetic algorithm: proposes each generation's individuals.

    A GA study has one owner process at a time (study attribute ``genetic_owner``):
    each generation is bred from the complete previous one, so a second process on the
    same study is refused while the owner lives. A dead owner's study is taken over
    and resumed: the generations are rebuilt from the seed and the stored trials.

    Args:
        space: The search space.
        genetic: The GA's parameters.
    """

    name = "genetic"

    def __init__(self, space: SearchSpace, genetic: GeneticSettings) -> None:
        self.space = space
        self.genetic = genetic
        self.toolbox = _toolbox(space, genetic)
        self.sizes = [len(values) for values in space.params.values()]
        self.seed = 0
        self.generation = 0
        self.population: list = []
        self.bonus: list[float] = []
        self.accuracies: dict[int, float] = {}
        self.fitnesses: dict[int, float] = {}
        self.lease: Optional[StudyLease] = None

    def meta(self, space: SearchSpace, settings: SearchSettings) -> dict:
        g = self.genetic
        protocol = {**settings.protocol_meta(), "pop": g.pop, "survivors": g.survivors,
                    "diversity": g.diversity, "individuality": g.individuality,
                    "mutation": g.mutation, "strategy_seed": settings.search_seed}
        if g.halving:  # left out otherwise, so studies made before the option continue
            protocol["halving"] = {"min_epochs": g.min_epochs, "eta": g.eta}
        if g.fitness != "bonus":
            protocol["fitness"] = g.fitness
        return {"strategy": self.name, "space": space.to_json(), "protocol": protocol}

    def pruner(self, settings: SearchSettings) -> Optional[optuna.pruners.BasePruner]:
        if not self.genetic.halving:
            return None
        return make_pruner("halving", settings.epochs or 25, self.genetic.min_epochs,
                           self.genetic.eta)

    def check(self, space: SearchSpace, settings: SearchSettings) -> None:
        if space.budget is not None:
            raise PairsearchError("the genetic algorithm breeds any combination of values; it "
                                  "cannot keep to a parameter [budget] (use grid)")
        self.pruner(settings)  # a bad budget is refused before any write
        self.seed = settings.search_seed

    def start(self, study: optuna.Study) -> None:
        self.lease = StudyLease(study, "genetic_owner", "genetic study")
        self.lease.acquire()
        self.study = study
        stored = stored_generations(study)
        pop = self.genetic.pop
        complete = sorted(g for g, members in stored.items() if len(members) == pop)
        # Rebuild the generations deterministically from the seed; stored trials say which
        # individuals are already evaluated.
        with _isolated_random(_generation_rng(self.seed, 0)):
            self.population = self.toolbox.population(n=pop)
        self.generation = 0
        if complete:
            last = complete[-1]
            members = stored[last]
            population = [creator.PairsearchIndividual(members[i].user_attrs[Attr.GENES])
                          for i in range(pop)]
            self.population = select_and_breed(
                population, [ranked_accuracy(members[i]) for i in range(pop)],
                [members[i].user_attrs[Attr.FITNESS] for i in range(pop)], self.genetic,
                self.toolbox, _generation_rng(self.seed, last + 1))
            self.generation = last + 1
        self._begin_generation(stored.get(self.generation, {}))

    def _begin_generation(self, already: dict[int, optuna.trial.FrozenTrial]) -> None:
        self.bonus = individuality(self.population, self.genetic.individuality == "normalised",
                                   self.sizes)
        # fitness = accuracy × scale + weight × individuality (see GeneticSettings.fitness)
        self.weight = self.genetic.diversity
        self.scale = [1.0] * self.genetic.pop
        if self.genetic.fitness == "decaying":
            self.weight *= 1 - self.generation / self.genetic.gens
        elif self.genetic.fitness == "sharing":
            self.weight = 0.0
            self.scale = [1 / m for m in niche_counts(self.population, self.sizes)]
        self.accuracies = {i: ranked_accuracy(t) for i, t in already.items()}
        self.fitnesses = {i: t.user_attrs[Attr.FITNESS] for i, t in already.items()}

    def propose(self, study: optuna.Study) -> Optional[Sequence[Proposal]]:
        pop = self.genetic.pop
        if self.generation >= self.genetic.gens:
            return None
        if len(self.accuracies) == pop:
            if self.generation + 1 >= self.genetic.gens:
                self.generation = self.genetic.gens
                return None
            self.population = select_and_breed(
                self.population, [self.accuracies[i] for i in range(pop)],
                [self.fitnesses[i] for i in range(pop)], self.genetic, self.toolbox,
                _generation_rng(self.seed, self.generation + 1))
            self.generation += 1
            self._begin_generation({})
        return [self._proposal(index) for index in range(pop) if index not in self.accuracies]

    def fitness(self, index: int, accuracy: float) -> float:
        """Individual ``index``'s fitness in this generation, given its accuracy."""
        return accuracy * self.scale[index] + self.weight * self.bonus[index]

    def _proposal(self, index: int) -> Proposal:
        genes = list(self.population[index])
        attrs = {Attr.GENERATION: self.generation, Attr.INDIVIDUAL: index, Attr.GENES: genes,
                 Attr.INDIVIDUALITY: self.bonus[index]}
        return Proposal(self.space.cell_at(genes), attrs, prune=self.genetic.halving)

    def observe(self, proposal: Proposal, outcome: Outcome) -> dict:
        index = proposal.attrs[Attr.INDIVIDUAL]
        self.accuracies[index] = ranked_accuracy(outcome)
        self.fitnesses[index] = self.fitness(index, self.accuracies[index])
        self.lease.renew()
        # The fitness depends on the accuracy: stored with the trial as it is told.
        return {Attr.FITNESS: self.fitnesses[index]}

    def finish(self, study: optuna.Study) -> None:
        if self.lease is not None:
            self.lease.release()

    def progress(self, study: optuna.Study) -> tuple[int, int]:
        total = self.genetic.gens * self.genetic.pop
        done = self.generation * self.genetic.pop + len(self.accuracies)
        return total, min(done, total)


def run_genetic(space: SearchSpace, settings: SearchSettings, genetic: GeneticSettings,
                storage: optuna.storages.BaseStorage, study_name: str,
                progress: bool = True, stop: StopRequest = NEVER,
                batching: str = "auto") -> SearchSummary:
    """Run (or resume) the genetic algorithm for ``genetic.gens`` generations.

    Raises:
        PairsearchError: If the study exists with another space, protocol or GA settings,
            or another live process owns it.
    """
    return drive(GeneticStrategy(space, genetic), space, settings, storage, study_name,
                 progress, stop, batching)
