"""The course's pair protocol: pooled digits, random pairs, target = class(a) ≤ class(b).

It follows ``generate_pair_sets`` of the EE-559 prologue that all five reports
use: 28×28 digits average-pooled to 14×14, a random permutation of the pool,
the first 2N digits taken as N pairs. Train pairs come from the training pool,
test pairs from the disjoint test pool, and both are standardised with the
training pairs' mean and standard deviation (``inputs="standardised"``, the
default) or left as raw 0–255 pixel values (``inputs="raw"``: report 001 never
says it standardised, and its results fit raw inputs).

Several independent draws of the pairs (``generate_draws``) give a figure that
does not rest on one sample of 1000 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from pairsearch.data.sources import DigitPools
from pairsearch.errors import BadValue, PairsearchError
from pairsearch.seeds import draw_seed

Inputs = Literal["standardised", "raw"]
INPUTS: tuple[str, ...] = ("standardised", "raw")


@dataclass(frozen=True)
class PairSet:
    """N digit pairs.

    Attributes:
        inputs: (N, 2, 14, 14) float32 images.
        targets: (N,) int64, 1 where class(a) ≤ class(b).
        classes: (N, 2) int64 digit classes.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    classes: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: torch.Tensor) -> "PairSet":
        """The pairs at ``index``."""
        return PairSet(self.inputs[index], self.targets[index], self.classes[index])

    def to(self, device: torch.device | str) -> "PairSet":
        """A copy on ``device``."""
        return PairSet(self.inputs.to(device), self.targets.to(device), self.classes.to(device))


@dataclass(frozen=True)
class PairData:
    """Normalised train and test pairs with the source they came from.

    Attributes:
        train: Training pairs (searches only ever see these).
        test: Test pairs from the disjoint test pool.
        source: Description of the digit source.
        mean: Training-pair pixel mean (subtracted when standardised).
        std: Training-pair pixel standard deviation (divided by when standardised).
        inputs: ``standardised`` or ``raw`` (0–255 pixel values).
    """

    train: PairSet
    test: PairSet
    source: str
    mean: float
    std: float
    inputs: str = "standardised"

    def to(self, device: torch.device | str) -> "PairData":
        """A copy with both pair sets on ``device``."""
        return PairData(self.train.to(device), self.test.to(device), self.source, self.mean,
                        self.std, self.inputs)


def make_pairs(images: torch.Tensor, labels: torch.Tensor, n: int,
               generator: torch.Generator) -> PairSet:
    """Draw ``n`` pairs from a pool of 28×28 digits, without normalising.

    Args:
        images: (M, 28, 28) digits, M ≥ 2n.
        labels: (M,) classes.
        n: Number of pairs.
        generator: Source of the permutation.

    Returns:
        The pairs, pooled to 14×14.
    """
    pooled = F.avg_pool2d(images.float().unsqueeze(1), kernel_size=2)  # (M, 1, 14, 14)
    pick = torch.randperm(len(images), generator=generator)[: 2 * n].view(n, 2)
    inputs = torch.cat([pooled[pick[:, 0]], pooled[pick[:, 1]]], dim=1)
    classes = labels[pick].long()
    targets = (classes[:, 0] <= classes[:, 1]).long()
    return PairSet(inputs, targets, classes)


def generate_pairs(pools: DigitPools, n_train: int = 1000, n_test: int = 1000,
                   seed: int = 0, inputs: str = "standardised") -> PairData:
    """Train and test pairs drawn from disjoint pools, standardised by the training pairs.

    Args:
        pools: The digit source.
        n_train: Number of training pairs.
        n_test: Number of test pairs.
        seed: Seed of the pair draw.
        inputs: ``standardised`` (the training pairs' mean and std) or ``raw`` (0–255).

    Returns:
        The pair data.

    Raises:
        PairsearchError: If a pool is too small for the requested number of pairs, or
            ``inputs`` is unknown.
    """
    if inputs not in INPUTS:
        raise BadValue("inputs", inputs, f"expected one of {', '.join(INPUTS)}")
    for name, n, pool in (("train", n_train, pools.train_labels),
                          ("test", n_test, pools.test_labels)):
        if n < 1 or 2 * n > len(pool):
            raise PairsearchError(
                f"cannot draw {n} {name} pairs: the {name} pool of this source has "
                f"{len(pool)} digits (1 to {len(pool) // 2} pairs)"
            )
    generator = torch.Generator().manual_seed(seed)
    train = make_pairs(pools.train_images, pools.train_labels, n_train, generator)
    test = make_pairs(pools.test_images, pools.test_labels, n_test, generator)
    mean, std = train.inputs.mean(), train.inputs.std()
    if inputs == "standardised":
        train = PairSet((train.inputs - mean) / std, train.targets, train.classes)
        test = PairSet((test.inputs - mean) / std, test.targets, test.classes)
    return PairData(train, test, pools.description, float(mean), float(std), inputs)


def generate_draws(pools: DigitPools, n_train: int = 1000, n_test: int = 1000, seed: int = 0,
                   draws: int = 1, inputs: str = "standardised") -> list[PairData]:
    """``draws`` independent draws of train and test pairs (``seeds.draw_seed``).

    Draw 0 is ``generate_pairs(..., seed)``: one draw is what a single-draw command gives.

    Raises:
        PairsearchError: As ``generate_pairs``, or if ``draws`` < 1.
    """
    if draws < 1:
        raise BadValue("draws", draws, "needs at least 1")
    return [generate_pairs(pools, n_train, n_test, draw_seed(seed, d), inputs)
            for d in range(draws)]
