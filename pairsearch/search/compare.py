"""Which configurations cross-validation can tell apart: the corrected resampled t-test.

Configurations retested on the same folds give paired per-fold accuracies. Their
differences are not independent (the K training sets of a K-fold overlap), so the
plain paired t-test finds differences that are not there. Nadeau & Bengio (2003,
"Inference for the Generalization Error", Machine Learning 52) correct its variance
by the ratio of test to training size: with J = K × R fold scores of R repeated
K-folds,

    t = mean(d) / sqrt((1 / J + n_test / n_train) × var(d)),   J - 1 degrees of freedom,

where n_test / n_train = 1 / (K - 1) for K-fold. Bouckaert & Frank (2004) recommend it
for repeated K-fold, the protocol ``pairsearch retest`` uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from pairsearch.errors import BadValue

ALPHA = 0.05
"""Significance level below which a candidate is called worse than the best."""


@dataclass(frozen=True)
class PairedTest:
    """The corrected resampled t-test of one candidate against another.

    Attributes:
        difference: Mean per-fold accuracy of the other minus the candidate's.
        t: The corrected t statistic (0 when every difference is 0).
        p: One-sided p-value that the other is better (1 when nothing differs).
    """

    difference: float
    t: float
    p: float


def corrected_paired_ttest(best: Sequence[float], other: Sequence[float],
                           folds: int) -> PairedTest:
    """Nadeau & Bengio's corrected resampled t-test of ``best`` against ``other``.

    Args:
        best: Per-fold accuracies of one configuration (R × K, in fold order).
        other: The other's, on the same folds in the same order.
        folds: K of the K-fold (the test/train ratio is 1 / (K - 1)).

    Returns:
        The mean difference ``best - other``, t and the one-sided p-value that ``best``
        is the better one.

    Raises:
        PairsearchError: If the score lists differ in length, hold fewer than 2 scores,
            or K < 2.
    """
    if folds < 2:
        raise BadValue("folds", folds, "K-fold needs K >= 2")
    if len(best) != len(other):
        raise BadValue("other", len(other), f"needs as many fold scores as best ({len(best)}):"
                       " the configurations must be scored on the same folds")
    if len(best) < 2:
        raise BadValue("best", len(best), "needs at least 2 fold scores")
    from scipy import stats  # imported here: a second of start-up for every command otherwise

    differences = np.asarray(best, dtype=float) - np.asarray(other, dtype=float)
    count = len(differences)
    mean = float(differences.mean())
    variance = float(differences.var(ddof=1))
    if variance == 0.0:
        if mean == 0.0:
            return PairedTest(0.0, 0.0, 1.0)
        return PairedTest(mean, math.copysign(math.inf, mean), 0.0 if mean > 0 else 1.0)
    t = mean / math.sqrt((1 / count + 1 / (folds - 1)) * variance)
    return PairedTest(mean, t, float(stats.t.sf(t, df=count - 1)))


def against_best(scores: Mapping[str, Sequence[float]], folds: int) -> dict[str, PairedTest]:
    """Each candidate against the best one (the highest mean), by ``corrected_paired_ttest``;
    a candidate with ``p >= ALPHA`` is statistically indistinguishable from the best.

    Args:
        scores: Candidate → its per-fold accuracies, all on the same folds.
        folds: K of the K-fold.

    Returns:
        Candidate → its test against the best (the best itself: difference 0, p 1).

    Raises:
        PairsearchError: On score lists of different lengths.
    """
    if not scores:
        return {}
    best = max(scores, key=lambda name: float(np.mean(scores[name])))
    return {name: corrected_paired_ttest(scores[best], values, folds)
            for name, values in scores.items()}
