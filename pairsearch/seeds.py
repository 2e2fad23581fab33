"""Every seed pairsearch derives, from one helper with named streams.

A run's seed never comes from a counter or the global RNG: it is a pure function of
the user's ``--seed`` and the run's place in the protocol, so a run trained alone, in
an ensemble, by another worker or after a resume gets the same seed. Each stream is
NumPy's ``SeedSequence`` hashing of ``[seed, *words]``; the word layouts below are
those pairsearch has always used (``tests/test_seeds.py`` pins their values), so
stored studies stay reproducible.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

_31_BITS = 0x7FFFFFFF


def derive(*words: int, bits: int = 31) -> int:
    """A seed hashed from ``words`` (``SeedSequence(words)``), ``bits`` wide (31 or 32)."""
    state = int(np.random.SeedSequence(list(words)).generate_state(1)[0])
    return state & _31_BITS if bits == 31 else state


def split_seed(seed: int, repeat: int) -> int:
    """The seed of repeat ``repeat``'s stratified fold split."""
    return derive(seed, repeat, 0)


def run_seed(seed: int, repeat: int, fold: Optional[int]) -> int:
    """The seed of one training's initialisation, shuffles and dropout masks.

    ``fold`` is ``None`` under the test protocol (one training on all training pairs).
    """
    return derive(seed, repeat, 1 if fold is None else 2 + fold)


def draw_seed(seed: int, draw: int) -> int:
    """The seed of draw ``draw`` of the pairs; draw 0 is ``seed`` itself.

    Draw 0 is what a single-draw command with ``--seed seed`` uses, so adding draws
    never changes the first one.
    """
    return seed if draw == 0 else derive(seed, draw, 7)


def generation_seed(seed: int, generation: int) -> int:
    """The seed of the genetic algorithm's random choices for one generation (32 bits)."""
    return derive(seed, 7919, generation, bits=32)
