"""Stratified folds: scikit-learn's splits, reproduced without importing it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pairsearch.errors import PairsearchError
from pairsearch.evaluation import stratified_folds


def test_folds_are_disjoint_cover_and_stratified():
    targets = torch.tensor([0] * 40 + [1] * 60)
    folds = stratified_folds(targets, 5, seed=0)
    assert len(folds) == 5
    seen = []
    for train, valid in folds:
        assert set(train.tolist()).isdisjoint(valid.tolist())
        assert len(train) + len(valid) == 100
        assert targets[valid].sum().item() == 12  # 60 positives / 5 folds
        seen += valid.tolist()
    assert sorted(seen) == list(range(100))


def test_too_many_folds_is_a_clear_error():
    with pytest.raises(PairsearchError, match="cannot make 6 stratified folds"):
        stratified_folds(torch.tensor([0] * 5 + [1] * 20), 6, seed=0)


def _label_arrays():
    rng = np.random.default_rng(0)
    yield "balanced", np.array([0, 1] * 50)
    yield "sorted", np.array([0] * 37 + [1] * 63)
    yield "1 first", np.array([1] * 20 + [0] * 15 + [1] * 7)
    for size in (10, 101, 800, 1000):
        for share in (0.3, 0.5, 0.8):
            yield f"random {size} {share}", (rng.random(size) < share).astype(np.int64)
    yield "ten classes", rng.integers(0, 10, 500)
    yield "labels 3 and 7", rng.choice([7, 3], 300)


@pytest.mark.parametrize("name, labels", list(_label_arrays()))
def test_folds_equal_scikit_learns(name, labels):
    """Same folds as StratifiedKFold(shuffle=True): stored studies keep their folds."""
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.unique(labels, return_counts=True)[1].min())
    for folds in sorted({2, 3, 5, 10} & set(range(2, smallest + 1))):
        for seed in (0, 1, 42, 2**31 - 1, 123456789):
            ours = stratified_folds(torch.from_numpy(labels), folds, seed)
            theirs = StratifiedKFold(folds, shuffle=True, random_state=seed).split(
                np.zeros(len(labels)), labels)
            for (train, valid), (their_train, their_valid) in zip(ours, theirs, strict=True):
                assert train.dtype == torch.int64
                np.testing.assert_array_equal(train.numpy(), their_train)
                np.testing.assert_array_equal(valid.numpy(), their_valid)


def test_one_class_is_a_clear_error():
    with pytest.raises(PairsearchError, match="has only 0 training pairs"):
        stratified_folds(torch.ones(50, dtype=torch.int64), 5, seed=0)


def test_folds_depend_on_the_seed():
    labels = torch.tensor([0, 1] * 100)
    first = stratified_folds(labels, 5, 0)[0][1]
    assert not torch.equal(first, stratified_folds(labels, 5, 1)[0][1])
    assert torch.equal(first, stratified_folds(labels, 5, 0)[0][1])
