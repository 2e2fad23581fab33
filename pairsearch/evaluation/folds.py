"""Stratified K-fold splits: scikit-learn's ``StratifiedKFold``, without importing scikit-learn.

``stratified_folds(targets, k, seed)`` returns exactly the folds of
``StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(X, targets)``
(the algorithm of scikit-learn ≥ 0.22, unchanged since), so every study stored
before this module existed keeps its fold assignment. Importing
``sklearn.model_selection`` costs 1.5–2 s of start-up (SciPy comes with it) on
every ``pairsearch evaluate``, for twenty lines of NumPy; ``tests/test_folds.py``
checks the two agree on many label arrays, seeds and fold counts.
"""

from __future__ import annotations

import numpy as np
import torch

from pairsearch.errors import PairsearchError


def stratified_folds(targets: torch.Tensor, folds: int, seed: int
                     ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Disjoint (train, validation) index pairs, each fold with the targets' class balance.

    Args:
        targets: One class label per example (any integer labels).
        folds: Number of folds K.
        seed: Seed of the shuffle (``random_state`` of scikit-learn's splitter).

    Returns:
        K (train indices, validation indices) pairs, int64, each sorted.

    Raises:
        PairsearchError: If a class has fewer examples than ``folds``, or there is one class.
    """
    classes = _classes_by_first_appearance(targets.cpu().numpy())
    counts = np.bincount(classes)
    smallest = int(counts.min()) if len(counts) > 1 else 0  # a single class: none of the other
    if folds > smallest:
        raise PairsearchError(f"cannot make {folds} stratified folds: the rarer target class "
                              f"has only {smallest} training pairs")
    fold_of = _validation_fold_of_each_example(classes, counts, folds,
                                               np.random.RandomState(seed))
    indices = np.arange(len(classes))
    return [(torch.from_numpy(indices[fold_of != k]), torch.from_numpy(indices[fold_of == k]))
            for k in range(folds)]


def _classes_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """Each label as 0, 1, ... numbered in order of first appearance, as scikit-learn
    numbers them: the order decides which class consumes the random stream first."""
    _, first_index, lexicographic = np.unique(labels, return_index=True, return_inverse=True)
    _, appearance_rank = np.unique(first_index, return_inverse=True)
    return appearance_rank[lexicographic.ravel()]


def _validation_fold_of_each_example(classes: np.ndarray, counts: np.ndarray, folds: int,
                                     rng: np.random.RandomState) -> np.ndarray:
    """scikit-learn's ``StratifiedKFold._make_test_folds`` with ``shuffle=True``."""
    # Examples of each class per fold: deal the sorted classes round robin over the folds.
    ordered = np.repeat(np.arange(len(counts)), counts)
    allocation = np.asarray([np.bincount(ordered[k::folds], minlength=len(counts))
                             for k in range(folds)])
    fold_of = np.empty(len(classes), dtype="i")
    for label in range(len(counts)):
        blocks = np.arange(folds).repeat(allocation[:, label])
        rng.shuffle(blocks)
        fold_of[classes == label] = blocks
    return fold_of
