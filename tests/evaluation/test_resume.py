"""Continuing a training from its state equals training it from scratch, exactly."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
import torch

from pairsearch.errors import PairsearchError
from pairsearch.evaluation import Config, Protocol, TrainingState, evaluate, evaluate_many

CV = Protocol("cv", folds=3)


def _at(config: Config, epochs: int) -> Config:
    return replace(config, train=replace(config.train, epochs=epochs))


def _scores(evaluation):
    return [(r.accuracy, r.f1, r.digit_accuracy, r.final_loss) for r in evaluation.runs]


@pytest.mark.parametrize("engine", ["loop", "vmap"])
@pytest.mark.parametrize("model, settings", [
    ("siamese_aux", {"optimizer": "adam", "lr": "3e-3", "batch_size": "50"}),
    # BatchNorm statistics, dropout masks and augmentation draws all continue.
    ("siamese_aux", {"optimizer": "adamw", "lr": "1e-3", "batch_size": "32", "batchnorm": "true",
                     "dropout": "0.2", "shift": "1"}),
    ("mlp", {"optimizer": "adagrad", "lr": "0.05", "batch_size": "64"}),
    ("mlp", {"optimizer": "sgd", "lr": "0.1", "batch_size": "100", "dropout": "0.3"}),
])
def test_continuing_equals_training_from_scratch(small_pairs, model, settings, engine):
    if engine == "vmap" and "dropout" in settings:
        pytest.skip("under vmap dropout masks come from the device's global stream, not the "
                    "run's generator: a continued run is a valid training, not the same one")
    full = Config.from_settings(model, {**settings, "epochs": "4"})
    scratch = evaluate(full, small_pairs, CV, seed=3, precision="fp32", engine=engine)
    part = evaluate(_at(full, 1), small_pairs, CV, seed=3, precision="fp32", engine=engine,
                    keep_state=True)
    assert part.state is not None and part.state.epochs == 1 and len(part.state.runs) == 3
    middle = evaluate(_at(full, 3), small_pairs, CV, seed=3, precision="fp32", engine=engine,
                      keep_state=True, resume=part.state)
    continued = evaluate(full, small_pairs, CV, seed=3, precision="fp32", engine=engine,
                         resume=middle.state)
    assert continued.resumed_from == 3 and scratch.resumed_from is None
    assert _scores(continued) == _scores(scratch)
    # A continued training can itself be continued: its state is the scratch one's.
    assert middle.state.epochs == 3


def test_a_state_survives_saving_and_loading(small_pairs):
    config = Config.from_settings("siamese_aux", {"epochs": "3", "batchnorm": "true"})
    part = evaluate(_at(config, 1), small_pairs, CV, seed=0, precision="fp32", keep_state=True)
    buffer = io.BytesIO()
    torch.save(part.state.to_dict(), buffer)
    buffer.seek(0)
    loaded = TrainingState.from_dict(torch.load(buffer, weights_only=True))
    continued = evaluate(config, small_pairs, CV, seed=0, precision="fp32", resume=loaded)
    scratch = evaluate(config, small_pairs, CV, seed=0, precision="fp32")
    assert _scores(continued) == _scores(scratch)


def test_resumed_and_fresh_configurations_train_side_by_side(small_pairs):
    # One architecture, one resumed from 1 epoch and one from scratch: different start
    # epochs never share an ensemble, and each equals its own evaluation.
    a = Config.from_settings("siamese_aux", {"epochs": "3", "lr": "1e-3"})
    b = Config.from_settings("siamese_aux", {"epochs": "3", "lr": "3e-3"})
    state = evaluate(_at(a, 1), small_pairs, CV, seed=1, precision="fp32", keep_state=True).state
    both = evaluate_many([a, b], small_pairs, CV, seed=1, precision="fp32", resume=[state, None],
                         keep_state=True)
    assert _scores(both[0]) == _scores(evaluate(a, small_pairs, CV, seed=1, precision="fp32"))
    assert _scores(both[1]) == _scores(evaluate(b, small_pairs, CV, seed=1, precision="fp32"))
    assert [e.state.epochs for e in both] == [3, 3]


def test_states_that_do_not_fit_are_refused(small_pairs):
    config = Config.from_settings("mlp", {"epochs": "2"})
    state = evaluate(config, small_pairs, CV, seed=0, keep_state=True).state
    with pytest.raises(PairsearchError, match="fewer than the 2"):
        evaluate(config, small_pairs, CV, seed=0, resume=state)
    with pytest.raises(PairsearchError, match="the protocol has 4"):
        evaluate(_at(config, 3), small_pairs, Protocol("cv", folds=4), seed=0, resume=state)
    with pytest.raises(PairsearchError, match="sequential"):
        evaluate(config, small_pairs, CV, seed=0, engine="sequential", keep_state=True)
    with pytest.raises(PairsearchError, match="not a training state"):
        TrainingState.from_dict({"epochs": 2})


def test_a_diverged_evaluation_keeps_no_state(small_pairs):
    config = Config.from_settings("mlp", {"epochs": "3", "optimizer": "sgd", "lr": "1e6"})
    result = evaluate(config, small_pairs, CV, seed=0, keep_state=True)
    assert result.failed is not None and result.state is None
