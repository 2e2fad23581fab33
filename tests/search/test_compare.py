"""The corrected resampled t-test on constructed fold scores whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from pairsearch.errors import PairsearchError
from pairsearch.search.compare import ALPHA, against_best, corrected_paired_ttest


def _folds(seed: int, mean: float, count: int = 30) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 0.012, count)


def test_identical_configurations_are_indistinguishable():
    scores = _folds(0, 0.95)
    test = corrected_paired_ttest(scores, scores.copy(), folds=10)
    assert test.difference == 0 and test.p == 1.0


def test_a_clearly_worse_configuration_is_flagged():
    best = _folds(0, 0.97)
    worse = best - 0.03 + np.random.default_rng(1).normal(0, 0.004, len(best))
    test = corrected_paired_ttest(best, worse, folds=10)
    assert test.difference == pytest.approx(0.03, abs=0.005)
    assert test.p < ALPHA


def test_a_difference_inside_the_noise_is_a_tie():
    best = _folds(0, 0.96)
    close = best - 0.002 + np.random.default_rng(2).normal(0, 0.012, len(best))
    assert corrected_paired_ttest(best, close, folds=10).p >= ALPHA


def test_the_correction_is_more_cautious_than_the_plain_paired_t_test():
    from scipy import stats

    best = _folds(0, 0.96)
    other = best - 0.006 + np.random.default_rng(3).normal(0, 0.01, len(best))
    plain = stats.ttest_rel(best, other, alternative="greater").pvalue
    assert corrected_paired_ttest(best, other, folds=10).p > plain


def test_against_best_names_the_best_and_ranks_the_rest():
    best = _folds(0, 0.97)
    tests = against_best({"a": best - 0.05, "b": best, "c": best.copy()}, folds=10)
    assert tests["b"].p == 1.0 and tests["c"].p == 1.0  # c ties b exactly
    assert tests["a"].p < ALPHA and tests["a"].difference == pytest.approx(0.05)


def test_unpaired_scores_are_refused():
    with pytest.raises(PairsearchError, match="same folds"):
        corrected_paired_ttest([0.9, 0.8, 0.7], [0.9, 0.8], folds=3)
    with pytest.raises(PairsearchError, match="K >= 2"):
        corrected_paired_ttest([0.9, 0.8], [0.9, 0.8], folds=1)
