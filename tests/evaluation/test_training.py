"""Batched training: the ensemble of runs trains as the runs trained one by one."""

from __future__ import annotations

import copy

import pytest
import torch

from pairsearch.evaluation import Config, Protocol, evaluate
from pairsearch.evaluation.training import batch_slices, train_ensemble, train_model
from pairsearch.models import create_model
from pairsearch.models.ensemble import Ensemble

def _train_both(small_pairs, name, train_options, engine, **model_options):
    """Two runs trained alone and as an ensemble, from the same weights and seeds."""
    config = Config.from_settings(name, {"epochs": "2", "batch_size": "32", **train_options}).train
    pairs = small_pairs.train
    index = [torch.arange(0, 150), torch.arange(50, 200)]
    alone, members = [], []
    for seed, idx in enumerate(index):
        torch.manual_seed(seed)
        model = create_model(name, **model_options)
        members.append(copy.deepcopy(model))  # the same starting weights
        outcome = train_model(model, pairs.subset(idx), config,
                              torch.Generator().manual_seed(100 + seed))
        alone.append((model, outcome.final_loss))
    ensemble = Ensemble(members, engine)
    outcome = train_ensemble(ensemble, pairs, index, config,
                             [torch.Generator().manual_seed(100 + s) for s in range(2)])
    return alone, ensemble, outcome


@pytest.mark.parametrize("name, train_options, model_options", [
    ("siamese_aux", {}, {}),
    ("siamese_aux", {"optimizer": "sgd", "lr": "0.05"}, {"batchnorm": True}),
    ("mlp", {"optimizer": "adagrad", "lr": "0.01"}, {"batchnorm": True, "dropout": 0.3}),
    ("naive_prob", {"optimizer": "adamw", "comparison_loss": "mse"}, {}),
    ("rnn_aux", {"digit_loss": "l1"}, {}),
    ("cnn_aux1", {"lambda": "0.5"}, {}),
    ("siamese_aux", {"shift": "2", "rotate": "10"}, {"dropout": 0.2}),
])
def test_ensemble_training_equals_training_one_by_one(small_pairs, name, train_options,
                                                      model_options):
    """Same seeds → same weights: shuffles, dropout masks, BatchNorm statistics and
    optimizer state are each member's own. The loop engine runs the very same kernels,
    so the weights agree to float rounding."""
    alone, ensemble, outcome = _train_both(small_pairs, name, train_options, "loop",
                                           **model_options)
    assert not outcome.diverged and not outcome.stopped
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

    with pytest.raises(PairsearchError, match="bad value 'fast' for engine"):
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

