"""On a CUDA machine: the evaluator, ensembles and a search give what they give on the CPU.

Skipped where no GPU is present (CI and the development machines); run by
benchmarks/device_check.sh on a GPU machine.
"""

from __future__ import annotations

import optuna
import pytest
import torch

from pairsearch.evaluation import Config, Protocol, evaluate, evaluate_many

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def test_auto_picks_the_gpu_and_vmap(small_pairs):
    result = evaluate(Config.from_settings("siamese_aux", {"epochs": "2"}), small_pairs,
                      Protocol("cv", folds=2), device="auto")
    assert result.device.startswith("cuda") and result.precision == "fp32"


@pytest.mark.parametrize("engine", ["loop", "vmap", "sequential"])
def test_gpu_scores_match_the_cpu(small_pairs, engine):
    config = Config.from_settings("siamese_aux", {"epochs": "3"})
    protocol = Protocol("cv", folds=2)
    gpu = evaluate(config, small_pairs, protocol, device="cuda", engine=engine,
                   precision="fp32")
    cpu = evaluate(config, small_pairs, protocol, device="cpu", engine="sequential",
                   precision="fp32")
    # Different kernels: equal within a few pairs of the held-out fold.
    assert gpu.accuracies == pytest.approx(cpu.accuracies, abs=0.03)


def test_batched_configurations_on_the_gpu(small_pairs):
    configs = [Config.from_settings("siamese_aux", {"epochs": "2", "lr": lr})
               for lr in ("0.001", "0.01", "0.003")]
    protocol = Protocol("cv", folds=2)
    together = evaluate_many(configs, small_pairs, protocol, device="cuda")
    for config, batched in zip(configs, together):
        alone = evaluate(config, small_pairs, protocol, device="cuda")
        assert batched.accuracies == pytest.approx(alone.accuracies, abs=1e-6)


def test_a_search_on_the_gpu(tmp_path):
    from pairsearch.search.types import SearchSettings
    from pairsearch.search.space import space_from_dict
    from pairsearch.search.store.storage import open_storage
    from pairsearch.search.strategies import run_grid

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    space = space_from_dict("g", {"params": {"model": ["siamese_aux", "naive"],
                                             "lr": [1e-3, 1e-2]}})
    run_grid(space, SearchSettings(folds=2, epochs=1, train_pairs=200, device="cuda"), storage,
             "g", progress=False, batching="on")
    study = optuna.load_study(study_name="g", storage=storage)
    assert len(study.trials) == 4
    assert {t.user_attrs["device"] for t in study.trials} == {"cuda:0"}


def test_a_continued_training_on_the_gpu(small_pairs):
    # Halving's survivors continue from checkpoints on a GPU too; cuDNN's kernels need not
    # be deterministic, so the continuation matches the from-scratch training within a few
    # pairs rather than bit for bit (on a CPU it is exact: test_resume.py).
    from dataclasses import replace

    config = Config.from_settings("siamese_aux", {"epochs": "4"})
    protocol = Protocol("cv", folds=2)
    part = evaluate(replace(config, train=replace(config.train, epochs=2)), small_pairs,
                    protocol, device="cuda", precision="fp32", keep_state=True)
    assert part.state is not None and part.state.epochs == 2
    continued = evaluate(config, small_pairs, protocol, device="cuda", precision="fp32",
                         resume=part.state)
    scratch = evaluate(config, small_pairs, protocol, device="cuda", precision="fp32")
    assert continued.resumed_from == 2
    assert continued.accuracies == pytest.approx(scratch.accuracies, abs=0.03)
