"""Every derived seed keeps the value it had before the streams moved to one module.

The numbers below were printed by the three former helpers (the evaluator's run and
split seeds, the runner's draw seeds, the genetic algorithm's generation streams) at
commit 66d4579; stored studies were made with them, and reproducibility is promised.
"""

from __future__ import annotations

import random

from pairsearch.seeds import derive, draw_seed, generation_seed, run_seed, split_seed


def test_run_seeds_are_unchanged():
    assert [run_seed(s, r, f) for s, r, f in [(0, 0, None), (0, 0, 0), (0, 2, 4), (7, 1, None),
                                              (12345, 0, 9)]] == [
        1683718082, 779308542, 1129165190, 582607262, 27715804]


def test_split_seeds_are_unchanged():
    assert [split_seed(s, r) for s, r in [(0, 0), (0, 3), (99, 1)]] == [
        821328062, 465539299, 1789372324]


def test_draw_seeds_are_unchanged_and_draw_zero_is_the_seed():
    assert [draw_seed(s, d) for s, d in [(0, 1), (0, 9), (5, 2)]] == [
        253989330, 1033819283, 1349774293]
    assert draw_seed(42, 0) == 42


def test_generation_streams_are_unchanged():
    assert [random.Random(generation_seed(s, g)).random() for s, g in [(0, 0), (0, 5), (3, 1)]] \
        == [0.06829680672000538, 0.7995168560070293, 0.7602762251235665]


def test_streams_differ_and_fit_their_width():
    seeds = {run_seed(0, 0, None), run_seed(0, 0, 0), split_seed(0, 0), draw_seed(0, 1)}
    assert len(seeds) == 4
    assert all(0 <= s < 2 ** 31 for s in seeds)
    assert derive(1, 2, bits=32) >= derive(1, 2)  # the 31-bit form masks the 32-bit one
