"""Ensembles: stacked members compute what each member computes alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pairsearch.models import create_model, list_models
from pairsearch.models.blocks import random_stream
from pairsearch.models.ensemble import Ensemble

# Options that make a model's forward deterministic (no dropout) and exercise BatchNorm.
DETERMINISTIC = {"mlp": {"batchnorm": True}, "cnn": {"batchnorm": True},
                 "siamese_aux": {"batchnorm": True}, "deep_aux": {"dropout": 0.0}}


def members_of(name: str, count: int, **options) -> list[nn.Module]:
    """Members with their own weights; dropout off, so that their forward is deterministic."""
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        model = create_model(name, **options)
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
        models.append(model)
    return models


@pytest.mark.parametrize("engine", ["loop", "vmap"])
@pytest.mark.parametrize("name", list_models())
def test_ensemble_forward_equals_each_member(name, engine):
    options = DETERMINISTIC.get(name, {})
    members = members_of(name, 3, **options)
    ensemble = Ensemble(members, engine).train()
    x = torch.randn(3, 6, 2, 14, 14)
    for output, member, batch in zip(ensemble(x), members, x):
        expected = member.train()(batch)
        for ours, theirs in zip(output, expected):
            assert (ours is None) == (theirs is None)
            if ours is not None:
                torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # BatchNorm running statistics: each member updated its own.
    for copy, member in zip(ensemble.members(), members):
        for (name_a, a), (_, b) in zip(copy.named_buffers(), member.named_buffers()):
            torch.testing.assert_close(a.float(), b.float(), msg=name_a)


def test_members_must_share_a_structure():
    with pytest.raises(ValueError, match="differs in structure"):
        Ensemble([create_model("mlp"), create_model("mlp", hidden=(32,))])
    with pytest.raises(ValueError, match="unknown engine"):
        Ensemble([create_model("mlp")], "threads")


def test_dropout_follows_the_runs_stream():
    layer = create_model("mlp", dropout=0.5).train()
    x = torch.randn(4, 2, 14, 14)
    with random_stream(torch.Generator().manual_seed(1)):
        a = layer(x).pair
    with random_stream(torch.Generator().manual_seed(1)):
        b = layer(x).pair
    with random_stream(torch.Generator().manual_seed(2)):
        c = layer(x).pair
    assert torch.equal(a, b) and not torch.equal(a, c)

