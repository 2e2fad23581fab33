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



@pytest.mark.parametrize("name", ["siamese_aux", "deep_aux", "mlp"])
def test_an_ensemble_from_weights_is_the_ensemble_of_the_models_holding_them(name):
    options = DETERMINISTIC.get(name, {})
    members = members_of(name, 3, **options)
    weights = [{**dict(m.named_parameters()), **dict(m.named_buffers())} for m in members]
    built = Ensemble(members)
    stacked = Ensemble.from_weights(create_model(name, **options), weights)
    for ours, theirs in zip(stacked.state_dict().values(), built.state_dict().values()):
        assert torch.equal(ours, theirs)
    x = torch.randn(3, 5, 2, 14, 14)
    for ours, theirs in zip(stacked.train()(x), built.train()(x)):
        assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(ours, theirs))
    with pytest.raises(ValueError, match="differ from the template"):
        Ensemble.from_weights(create_model(name, **options), weights[:1] + [{}])
    with pytest.raises(ValueError, match="at least one"):
        Ensemble.from_weights(create_model(name, **options), [])


@pytest.mark.parametrize("mode", [False, True])
def test_member_views_score_as_the_members_copies_do(mode):
    # Views run the ensemble's weights in place: the same outputs as copies, in eval mode
    # and in train mode (dropout from the run's stream, BatchNorm on the batch).
    members = members_of("siamese_aux", 3, batchnorm=True)
    for model in members:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.4
    ensemble = Ensemble(members)
    x = torch.randn(7, 2, 14, 14)
    for view, copy in zip(ensemble.member_views(), ensemble.members()):
        outputs = []
        for model in (view, copy):
            with torch.no_grad(), random_stream(torch.Generator().manual_seed(3)):
                outputs.append(model.train(mode)(x))
        assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(*outputs))
        assert view.training == mode
