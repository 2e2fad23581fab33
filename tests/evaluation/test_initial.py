"""Each run's starting weights, built once per process: the weights a fresh build gives."""

from __future__ import annotations

import torch

from pairsearch.evaluation import initial
from pairsearch.evaluation.initial import clear_cache, initial_weights
from pairsearch.models import create_model

OPTIONS = {"channels": (8, 16), "hidden": (12,), "batchnorm": True}


def fresh(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = create_model("siamese_aux", **OPTIONS)
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def test_the_kept_weights_are_a_fresh_build_under_the_seed_and_leave_the_rng_alone():
    clear_cache()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    for seed in (5, 6, 5):
        template, weights = initial_weights("siamese_aux", OPTIONS, seed, torch.device("cpu"))
        assert torch.equal(torch.get_rng_state(), state)
        expected = fresh(seed)
        torch.set_rng_state(state)
        assert weights.keys() == expected.keys()
        assert all(torch.equal(weights[name], expected[name]) for name in expected)
        assert set(weights) == {n for n, _ in template.named_parameters()} | \
            {n for n, _ in template.named_buffers()}
    # A second call with the same key is the same object; another seed another.
    assert initial_weights("siamese_aux", OPTIONS, 5, torch.device("cpu"))[1] is \
        initial_weights("siamese_aux", OPTIONS, 5, torch.device("cpu"))[1]
    assert initial_weights("siamese_aux", OPTIONS, 5, torch.device("cpu"))[1] is not \
        initial_weights("siamese_aux", {**OPTIONS, "hidden": (13,)}, 5, torch.device("cpu"))[1]


def test_the_cache_is_bounded(monkeypatch):
    clear_cache()
    monkeypatch.setattr(initial, "CACHE_SIZE", 3)
    for seed in range(5):
        initial_weights("mlp", {}, seed, torch.device("cpu"))
    assert len(initial._cache) == 3
    assert [key[2] for key in initial._cache] == [2, 3, 4]  # the least recently used left
