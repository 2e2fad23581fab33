"""Data augmentation: training digits move on their own; scored pairs never change."""

from __future__ import annotations

import pytest
import torch

from pairsearch.errors import PairsearchError
from pairsearch.evaluation import Config, Protocol, evaluate
from pairsearch.evaluation import training
from pairsearch.evaluation.augment import augment_digits


def _marked_pairs(count: int = 64) -> torch.Tensor:
    """Pairs on a background of -1 with one pixel of value 1 (first digit) or 2 (second)
    at the centre: where a mark lands shows how its digit moved."""
    pairs = torch.full((count, 2, 14, 14), -1.0)
    pairs[:, 0, 7, 7] = 1.0
    pairs[:, 1, 7, 7] = 2.0
    return pairs


def _marks(pairs: torch.Tensor, value: float) -> torch.Tensor:
    return (pairs == value).nonzero()


def test_no_augmentation_is_the_inputs_themselves():
    pairs = _marked_pairs()
    assert augment_digits(pairs, 0, 0.0, torch.Generator().manual_seed(0)) is pairs


def test_shifts_move_each_digit_on_its_own_by_whole_pixels_within_the_bound():
    pairs = _marked_pairs()
    before = pairs.clone()
    moved = augment_digits(pairs, 2, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(pairs, before)  # the inputs are left as they were
    assert moved.shape == pairs.shape
    # Each digit still holds exactly its own mark (nothing mixed between the pair's two
    # digits, so the pair's target and digit classes still describe it), moved at most 2.
    for channel, value in ((0, 1.0), (1, 2.0)):
        marks = _marks(moved[:, channel], value)
        assert marks[:, 0].tolist() == list(range(len(pairs)))  # one mark per digit
        assert (marks[:, 1:] - 7).abs().max() <= 2
        assert not (moved[:, 1 - channel] == value).any()
    assert set(moved.unique().tolist()) == {-1.0, 1.0, 2.0}  # nearest: no blurred values
    first = _marks(moved[:, 0], 1.0)[:, 1:]
    second = _marks(moved[:, 1], 2.0)[:, 1:]
    assert (first != second).any(dim=1).float().mean() > 0.5  # drawn per digit
    assert len({tuple(m) for m in first.tolist()}) > 10  # many different moves


def test_the_same_generator_state_moves_the_same_way():
    pairs = _marked_pairs()
    a = augment_digits(pairs, 1, 15.0, torch.Generator().manual_seed(3))
    b = augment_digits(pairs, 1, 15.0, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_rotation_keeps_a_centred_digit_in_place():
    pairs = torch.full((8, 2, 14, 14), -1.0)
    pairs[:, :, 5:9, 5:9] = 1.0
    turned = augment_digits(pairs, 0, 10.0, torch.Generator().manual_seed(0))
    assert not torch.equal(turned, pairs)
    assert (turned[:, :, 6:8, 6:8] > 0.9).all()  # the centre stays where it was


def test_augmentation_options_are_checked():
    with pytest.raises(PairsearchError, match="'shift'"):
        Config.from_settings("mlp", {"shift": "9"})
    with pytest.raises(PairsearchError, match="'rotate'"):
        Config.from_settings("mlp", {"rotate": "-5"})
    # Left out of the stored key at their defaults: older studies keep their keys.
    assert "shift" not in Config.from_settings("mlp").key()
    assert '"shift": 1' in Config.from_settings("mlp", {"shift": "1"}).key()


@pytest.mark.parametrize("kind", ["cv", "test"])
def test_validation_folds_and_test_pairs_are_scored_untouched(small_pairs, monkeypatch, kind):
    """Training augments; every scoring pass sees the pairs exactly as drawn."""
    scored = []
    real = training.predict

    def recording(model, inputs, *args, **kwargs):
        scored.append(inputs.clone())
        return real(model, inputs, *args, **kwargs)

    monkeypatch.setattr(training, "predict", recording)
    drawn = small_pairs.train.inputs.clone(), small_pairs.test.inputs.clone()
    config = Config.from_settings("siamese_aux", {"epochs": "1", "shift": "2", "rotate": "10"})
    result = evaluate(config, small_pairs, Protocol(kind, folds=2), seed=0)
    assert result.failed is None and scored
    torch.testing.assert_close(small_pairs.train.inputs, drawn[0])
    torch.testing.assert_close(small_pairs.test.inputs, drawn[1])
    rows = torch.cat([drawn[0], drawn[1]])
    for inputs in scored:  # every scored pair is one of the drawn pairs, unmoved
        assert (inputs[:, None] == rows[None]).flatten(2).all(dim=2).any(dim=1).all()
