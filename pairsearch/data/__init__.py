"""Pair data for the digit-comparison task: digit sources and the pair protocol."""

from pairsearch.data.pairs import (
    INPUTS,
    PairData,
    PairSet,
    generate_draws,
    generate_pairs,
    make_pairs,
)
from pairsearch.data.sources import DigitPools, load_pools
from pairsearch.names import DEFAULT_SOURCE

__all__ = ["DEFAULT_SOURCE", "INPUTS", "DigitPools", "PairData", "PairSet", "generate_draws",
           "generate_pairs", "load_pools", "make_pairs"]
