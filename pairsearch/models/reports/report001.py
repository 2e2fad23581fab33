"""Report 001's networks: ReLU and SGD by default, BatchNorm.

Its rows (experiments/report001.toml): the FNN and FNN + BN are the generic ``mlp`` with
``hidden=128`` (``batchnorm=true`` for FNN + BN); CNN + BN is ``r001_cnn``; CNN_AUX is
``r001_cnn_aux``; SIAMESE_CNN_AUX is ``r001_siamese_aux``. Each builder quotes the
sentences it implements and says what we chose where the report is silent.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from pairsearch.errors import PairsearchError
from pairsearch.models.blocks import (
    NUM_CLASSES,
    Activation,
    ConvStack,
    conv_layers,
    mlp,
    output_shape,
)
from pairsearch.models.generic import FlatNet, TwoBranchNet
from pairsearch.models.registry import register_model


def _r001_cnn(in_channels: int, out: int, act: str, batchnorm: bool,
              channels: tuple[int, ...] = (16, 32), hidden: int = 128) -> nn.Sequential:
    """Two 3×3 convolutions, each with max-pooling, then one hidden layer (by default 16 and
    32 channels, 128 units)."""
    if len(channels) != 2:
        raise PairsearchError(f"bad value {channels!r} for option 'channels' of report 001's "
                              "CNN: needs exactly 2 widths (it has 2 convolutions)")
    features = ConvStack(*conv_layers(in_channels, channels, act, kernel_size=3,
                                      batchnorm=batchnorm, pool_at=(0, 1)),
                         float_output=False)
    shape = output_shape(features, (in_channels, 14, 14))
    return nn.Sequential(features, mlp(shape, [hidden], out, act, batchnorm))


_R001_CNN = """

    Report 001: "The second architecture is the same as the previous one but with 2 extra
    convolutional layers with max pooling, before the fully connected layers, this model is
    similar and inspired by "LeNet" model." The report gives no kernel sizes or widths:
    3×3 convolutions of 16 and 32 channels, each followed by max-pooling, then the FNN's
    hidden layer of 128 (14 → 12 → 6 → 4 → 2: a 32×2×2 map). ``channels`` and ``hidden``
    set those unstated widths (an ablation halves and doubles them).
"""


@register_model(digit_heads=False)
def r001_cnn(*, activation: Activation = "relu", batchnorm: bool = True,
             channels: tuple[int, ...] = (16, 32), hidden: int = 128) -> nn.Module:
    """Report 001's CNN + BN on the 2-channel pair."""
    return FlatNet(nn.Identity(), _r001_cnn(2, 2, activation, batchnorm, channels, hidden))


def _r001_two_branch(shared: bool, act: str, batchnorm: bool, head: str,
                     channels: tuple[int, ...], hidden: int) -> TwoBranchNet:
    return TwoBranchNet(lambda: _r001_cnn(1, NUM_CLASSES, act, batchnorm, channels, hidden),
                        shared, True, head, 64, act)


_R001_AUX = """

    "we started by modifying the forward pass to separate the individual digit in each pair
    and then train the model on each digit individually, by giving each digit its own
    convolutions and network layers, before comparing the two digits in the last layer of
    our neural network. The forward pass returns a (x, y, z) triplet ... we updated the
    "train_model" function to compute a loss for each of the elements of the returned
    triplet and simply summed them together" (use ``lambda=1``). The last layer is one
    Linear(20, 2) on the two digit outputs (``head=probs_mlp``: our probability head;
    ``head=act_linear``: the activation on the digit outputs before that layer, an
    ablation, since the report does not say whether one sits there; ``head=probs_linear``:
    each digit's softmax before that one layer, the other reading of what reaches "the last
    layer", since the report does not say whether the digit outputs are logits or
    probabilities there).
"""

R001Head = Literal["logits_linear", "probs_mlp", "act_linear", "probs_linear"]


@register_model(digit_heads=True)
def r001_cnn_aux(*, activation: Activation = "relu", batchnorm: bool = True,
                 head: R001Head = "logits_linear", channels: tuple[int, ...] = (16, 32),
                 hidden: int = 128) -> nn.Module:
    """Report 001's CNN_AUX: each digit its own CNN + BN, compared in the last layer."""
    return _r001_two_branch(False, activation, batchnorm, head, channels, hidden)


@register_model(digit_heads=True)
def r001_siamese_aux(*, activation: Activation = "relu", batchnorm: bool = True,
                     head: R001Head = "logits_linear", channels: tuple[int, ...] = (16, 32),
                     hidden: int = 128) -> nn.Module:
    """Report 001's SIAMESE_CNN_AUX: CNN_AUX with one CNN + BN shared by both digits.

    "reusing the same convolutions and layers for the two digits (otherwise it is very
    similar to the "CNN_AUX" model)".
    """
    return _r001_two_branch(True, activation, batchnorm, head, channels, hidden)


for _builder in (r001_cnn, r001_cnn_aux, r001_siamese_aux):
    _builder.__doc__ = (_builder.__doc__ or "") + _R001_CNN
for _builder in (r001_cnn_aux, r001_siamese_aux):
    _builder.__doc__ = (_builder.__doc__ or "") + _R001_AUX
