"""Batched training: the ensemble of runs behaves as the runs trained one by one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from pairsearch.evaluation import Config, Protocol, evaluate
from pairsearch.evaluation.training import batch_slices, train_ensemble, train_model
from pairsearch.models import create_model, list_models
from pairsearch.models.blocks import ElmanRNN, MapLinear, PatchConv2d, random_stream
from pairsearch.models.ensemble import Ensemble

# Options that make a model's forward deterministic (no dropout) and exercise BatchNorm.
DETERMINISTIC = {"mlp": {"batchnorm": True}, "cnn": {"batchnorm": True},
                 "siamese_aux": {"batchnorm": True}, "deep_aux": {"dropout": 0.0}}


def members_of(name: str, count: int, **options) -> list[nn.Module]:
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        models.append(create_model(name, **options))
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


def _train_both(small_pairs, name, train_options, engine, **model_options):
    """Two runs trained alone and as an ensemble, from the same weights and seeds."""
    config = Config.from_settings(name, {"epochs": "2", "batch_size": "32", **train_options}).train
    pairs = small_pairs.train
    index = [torch.arange(0, 150), torch.arange(50, 200)]
    alone = []
    for seed, idx in enumerate(index):
        torch.manual_seed(seed)
        model = create_model(name, **model_options)
        outcome = train_model(model, pairs.subset(idx), config,
                              torch.Generator().manual_seed(100 + seed))
        alone.append((model, outcome.final_loss))
    ensemble = Ensemble(members_of(name, 2, **model_options), engine)
    outcome = train_ensemble(ensemble, pairs, index, config,
                             [torch.Generator().manual_seed(100 + s) for s in range(2)])
    return alone, ensemble, outcome


@pytest.mark.parametrize("name, train_options, model_options", [
    ("siamese_aux", {}, {}),
    ("siamese_aux", {"optimizer": "sgd", "lr": "0.05"}, {"batchnorm": True}),
    ("mlp", {"optimizer": "adagrad", "lr": "0.01"}, {"batchnorm": True, "dropout": 0.3}),
    ("naive", {"optimizer": "adamw", "comparison_loss": "mse"}, {}),
    ("rnn_aux", {"digit_loss": "l1"}, {}),
    ("cnn_aux1", {"lambda": "0.5"}, {}),
])
def test_ensemble_training_equals_training_one_by_one(small_pairs, name, train_options,
                                                      model_options):
    """Same seeds → same weights: shuffles, dropout masks, BatchNorm statistics and
    optimizer state are each member's own. The loop engine runs the very same kernels,
    so the weights agree to float rounding."""
    alone, ensemble, outcome = _train_both(small_pairs, name, train_options, "loop",
                                           **model_options)
    assert outcome.failed is None
    for (model, loss), trained, ensemble_loss in zip(alone, ensemble.members(),
                                                     outcome.final_losses):
        assert ensemble_loss == pytest.approx(loss, rel=1e-5)
        for (key, a), (_, b) in zip(model.state_dict().items(), trained.state_dict().items()):
            torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-5, msg=key)


def test_vmap_engine_trains_like_the_loop(small_pairs):
    """vmap batches the same arithmetic differently: equal within float tolerance."""
    alone, ensemble, outcome = _train_both(small_pairs, "siamese_aux", {}, "vmap")
    for (model, loss), trained in zip(alone, ensemble.members()):
        for (key, a), (_, b) in zip(model.state_dict().items(), trained.state_dict().items()):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=key)


def test_evaluator_engines_agree(small_pairs):
    """Per-fold accuracies of the batched evaluator equal the one-by-one path (K=3 on 200
    pairs gives unequal folds: 133, 133, 134 training pairs)."""
    config = Config.from_settings("siamese_aux", {"epochs": "3", "dropout": "0.2"})
    protocol = Protocol("cv", folds=3, repeats=2)
    sequential = evaluate(config, small_pairs, protocol, seed=3, engine="sequential")
    batched = evaluate(config, small_pairs, protocol, seed=3, engine="loop")
    assert batched.accuracies == pytest.approx(sequential.accuracies, abs=1e-9)
    assert [r.final_loss for r in batched.runs] == pytest.approx(
        [r.final_loss for r in sequential.runs], rel=1e-5)
    assert [(r.repeat, r.fold, r.seed) for r in batched.runs] == \
        [(r.repeat, r.fold, r.seed) for r in sequential.runs]


def test_unknown_engine_is_a_clear_error(small_pairs):
    from pairsearch.errors import PairsearchError

    with pytest.raises(PairsearchError, match="unknown engine 'fast'"):
        evaluate(Config.from_settings("mlp", {"epochs": "1"}), small_pairs, engine="fast")


def test_a_diverging_member_fails_the_evaluation_and_names_its_run(small_pairs):
    config = Config.from_settings("mlp", {"comparison_loss": "nll", "optimizer": "sgd",
                                          "lr": "1e30", "epochs": "3"})
    result = evaluate(config, small_pairs, Protocol("cv", folds=2), seed=0)
    assert result.failed is not None and result.failed.startswith("run 1 diverged: loss became")


def test_batch_slices_drop_only_a_last_single_pair():
    assert [(s.start, s.stop) for s in batch_slices(250, 100)] == [(0, 100), (100, 200),
                                                                   (200, 250)]
    assert [(s.start, s.stop) for s in batch_slices(201, 100)] == [(0, 100), (100, 200)]
    assert [(s.start, s.stop) for s in batch_slices(50, 100)] == [(0, 50)]


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


@pytest.mark.parametrize("in_channels, kernel, padding", [(1, 2, 0), (2, 2, 0), (1, 3, 1)])
def test_patch_convolution_is_a_convolution(in_channels, kernel, padding):
    layer = PatchConv2d(in_channels, 8, kernel, padding=padding)
    x = torch.randn(5, in_channels, 14, 14, requires_grad=True)
    out = layer(x)
    expected = F.conv2d(x, layer.weight, layer.bias, padding=padding)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)
    grad = torch.autograd.grad(out.square().sum(), [x, layer.weight, layer.bias])
    grad_expected = torch.autograd.grad(expected.square().sum(), [x, layer.weight, layer.bias])
    for ours, theirs in zip(grad, grad_expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_map_linear_is_flatten_then_linear(layout):
    layer = MapLinear((8, 3, 4), 5)
    x = torch.randn(6, 8, 3, 4).to(memory_format=layout).requires_grad_()
    out = layer(x)
    expected = F.linear(x.flatten(1), layer.weight, layer.bias)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.autograd.grad(out.square().sum(), [x, layer.weight, layer.bias])
    grad_expected = torch.autograd.grad(expected.square().sum(), [x, layer.weight, layer.bias])
    for ours, theirs in zip(grad, grad_expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    # Under vmap (the GPU engine) the layer must run too, with the same result.
    stacked = torch.stack([x.detach(), 2 * x.detach()]).to(memory_format=torch.contiguous_format)
    mapped = vmap(layer)(stacked)
    torch.testing.assert_close(mapped[1], layer(2 * x.detach()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
def test_elman_rnn_is_torchs_rnn(layers):
    ours = ElmanRNN(14, 32, layers)
    reference = nn.RNN(14, 32, layers, nonlinearity="tanh", batch_first=True)
    with torch.no_grad():
        for k, layer in enumerate(ours.layers):
            getattr(reference, f"weight_ih_l{k}").copy_(layer["ih"].weight)
            getattr(reference, f"bias_ih_l{k}").copy_(layer["ih"].bias)
            getattr(reference, f"weight_hh_l{k}").copy_(layer["hh"].weight)
            getattr(reference, f"bias_hh_l{k}").copy_(layer["hh"].bias)
    x = torch.randn(7, 14, 14)
    torch.testing.assert_close(ours(x), reference(x)[1][-1], rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in ours.parameters()) == \
        sum(p.numel() for p in reference.parameters())


def test_pooling_before_the_activation_is_exact():
    """conv_stack pools before activating: equal for every (non-decreasing) activation."""
    x = torch.randn(4, 8, 12, 12)
    for act in (nn.ReLU(), nn.LeakyReLU(), nn.Tanh(), nn.Sigmoid(), nn.SELU()):
        torch.testing.assert_close(F.max_pool2d(act(x), 2), act(F.max_pool2d(x, 2)))
