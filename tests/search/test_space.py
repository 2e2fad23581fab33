"""Search spaces: the shipped ones load, cells map to configurations, bad spaces are refused."""

from __future__ import annotations


import pytest

from pairsearch.errors import PairsearchError
from pairsearch.search.space import load_space, shipped_spaces, space_from_dict


def test_default_space_is_what_report_002_searched():
    """Table 2, plus L1 as both losses: the best cells of its tables 3-8 use it."""
    space = load_space(None)
    assert space.size == 6400 == len(list(space.cells()))
    assert list(space.params["model"]) == ["naive", "siamese", "twin_aux", "twin", "siamese_aux"]
    for loss in ("comparison_loss", "digit_loss"):
        assert set(space.params[loss]) == {"ce", "nll", "mse", "l1"}
    assert space.fixed["activation"] == "relu"
    # The naive model trains its digit losses alone: its comparison loss and lambda are one
    # configuration, so 6,400 cells are 2,800 trainings.
    assert len({space.config(c).key() for c in space.cells()}) == 2800


def test_every_shipped_space_is_valid():
    for name in shipped_spaces():
        assert load_space(name).size >= 1


def test_cells_map_to_configs_dropping_ignored_options(tiny_space):
    space = tiny_space(model=["mlp", "siamese_aux"], **{"lambda": [0.2, 0.9]})
    keys = {space.config(c).key() for c in space.cells()}
    assert len(keys) == 3  # mlp ignores lambda: its two cells are one configuration


@pytest.mark.parametrize("document, message", [
    ({}, r"no \[params\]"),
    ({"params": {}}, "no dimensions"),
    ({"params": {"model": ["vgg"]}}, "unknown model 'vgg'"),
    ({"params": {"model": ["mlp"], "colour": ["red"]}}, "unknown dimension 'colour'"),
    ({"params": {"model": ["mlp"], "lr": [0.1, -1]}}, "dimension 'lr'"),
    ({"params": {"model": ["mlp"], "lr": 0.1}}, "must be a list"),
    ({"params": {"model": ["mlp"], "lr": []}}, "has no values"),
    ({"params": {"model": ["mlp", "mlp"]}}, "repeats a value"),
    ({"params": {"lr": [0.1]}}, "sets no 'model'"),
    ({"params": {"model": ["mlp"]}, "extra": {}}, "unknown table"),
    ({"params": {"model": ["mlp"], "optimizer": ["rmsprop"]}}, "dimension 'optimizer'"),
])
def test_bad_spaces(document, message):
    with pytest.raises(PairsearchError, match=message):
        space_from_dict("bad", document)

