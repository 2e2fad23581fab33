"""Pair data for the digit-comparison task: digit sources and the pair protocol."""

from pairsearch.data.pairs import PairData, PairSet, generate_pairs, make_pairs
from pairsearch.data.sources import DEFAULT_SOURCE, DigitPools, load_pools

__all__ = ["DEFAULT_SOURCE", "DigitPools", "PairData", "PairSet", "generate_pairs", "load_pools",
           "make_pairs"]
