"""Data augmentation of training pairs: each digit moved (and turned) on its own.

A pair's target and digit classes depend only on which digits it holds, so moving
each 14×14 digit by a few pixels, or turning it by a few degrees, keeps every label;
it only widens what 2,000 training digits show the network. Augmentation applies to
the mini-batches a training step sees, never to the pairs a model is scored on (the
validation folds and the test pairs go through ``training.predict`` untouched).

The random moves come from the training run's own generator, drawn before the
forward pass, so a run augments the same way trained alone or in an ensemble.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F


def augment_digits(inputs: torch.Tensor, shift: int, rotate: float,
                   generator: Optional[torch.Generator]) -> torch.Tensor:
    """A copy of ``inputs`` whose every digit is moved by up to ``shift`` pixels along each
    axis and turned by up to ``rotate`` degrees, each digit drawn independently.

    Args:
        inputs: Pairs, shape (N, 2, H, W).
        shift: Largest translation in whole pixels (uniform in -shift..shift per axis).
        rotate: Largest rotation in degrees (uniform in [-rotate, rotate]).
        generator: The run's random generator, on the inputs' device.

    Returns:
        ``inputs`` itself when both are 0, else a new tensor of the same shape. Whole-pixel
        moves without rotation are exact (nearest-neighbour sampling); pixels moved in from
        outside copy the border (background).
    """
    if shift == 0 and rotate == 0:
        return inputs
    n, pair, height, width = inputs.shape
    digits = inputs.reshape(n * pair, 1, height, width)
    count = n * pair
    device = inputs.device
    theta = torch.zeros(count, 2, 3, device=device, dtype=inputs.dtype)
    if rotate:
        angle = (torch.rand(count, generator=generator, device=device) * 2 - 1) \
            * math.radians(rotate)
        cos, sin = angle.cos().to(inputs.dtype), angle.sin().to(inputs.dtype)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    else:
        theta[:, 0, 0] = theta[:, 1, 1] = 1
    if shift:
        moves = torch.randint(-shift, shift + 1, (2, count), generator=generator, device=device)
        # affine_grid's coordinates span [-1, 1] over the image: one pixel is 2 / size.
        theta[:, 0, 2] = moves[0].to(inputs.dtype) * (2 / width)
        theta[:, 1, 2] = moves[1].to(inputs.dtype) * (2 / height)
    grid = F.affine_grid(theta, [count, 1, height, width], align_corners=False)
    moved = F.grid_sample(digits, grid, mode="bilinear" if rotate else "nearest",
                          padding_mode="border", align_corners=False)
    return moved.reshape(n, pair, height, width)
