"""Report 003's networks: feature extractors, a sigmoid binary classifier, concatenated
features.

Its rows (experiments/report003.toml): the vanilla MLP and ConvNet are ``r003_mlp`` and
``r003_cnn``, with weight sharing ``r003_mlp_ws`` and ``r003_cnn_ws``, with weight sharing
and the digit classifier's auxiliary loss ``r003_mlp_ws_aux`` and ``r003_cnn_ws_aux``. Each
builder quotes table I and says what we chose where the report is silent.
"""

from __future__ import annotations

import torch
from torch import nn

from pairsearch.models.blocks import (
    DIGIT_PIXELS,
    NUM_CLASSES,
    Activation,
    ConvStack,
    Dropout,
    conv_layers,
    make_activation,
    output_shape,
)
from pairsearch.models.generic import FlatNet
from pairsearch.models.registry import register_model
from pairsearch.models.reports.common import FeaturePairNet


class SigmoidPair(nn.Module):
    """One output unit read through a sigmoid, as pair logits (0, z).

    softmax(0, z) = (1 − σ(z), σ(z)), so cross-entropy on these logits is the binary
    cross-entropy of σ(z): a single sigmoid output, trained and scored as such.
    """

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return torch.cat([torch.zeros_like(z), z], dim=1)


def _r003_mlp_features(in_features: int, hidden: tuple[int, ...], act: str,
                       dropout: float) -> nn.Sequential:
    """"the MLP feature extraction part consists of 4 linear layers" (Linear → act each)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), make_activation(act)]
        if dropout > 0:
            layers.append(Dropout(dropout))
        width = size
    return nn.Sequential(*layers)


def _r003_cnn_features(in_channels: int, channels: tuple[int, ...], act: str,
                       batchnorm: bool) -> nn.Module:
    """Table I: Conv2d → ReLU → MaxPool2d → Conv2d → ReLU → MaxPool2d → Conv2d → ReLU (the
    pools before the activations, see ``conv_layers``)."""
    layers = conv_layers(in_channels, channels, act, batchnorm=batchnorm,
                         pool_at=range(len(channels) - 1))
    return nn.Sequential(ConvStack(*layers), nn.Flatten())


def _r003_binary(kind: str, in_features: int, hidden: int, act: str) -> nn.Sequential:
    """Binary classifier: MLP "Linear Sigmoid"; ConvNet "Linear ReLU Linear Sigmoid"."""
    if kind == "mlp":
        return nn.Sequential(SigmoidPair(in_features))
    return nn.Sequential(nn.Linear(in_features, hidden), make_activation(act),
                         SigmoidPair(hidden))


def _r003_digit(kind: str, in_features: int, hidden: int, act: str) -> nn.Sequential:
    """Digit classifier: MLP "Linear"; ConvNet "Linear ReLU Linear"."""
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_features, NUM_CLASSES))
    return nn.Sequential(nn.Linear(in_features, hidden), make_activation(act),
                         nn.Linear(hidden, NUM_CLASSES))


def _r003(kind: str, shared: bool, digit_heads: bool, hidden: tuple[int, ...],
          channels: tuple[int, ...], act: str, dropout: float, batchnorm: bool) -> nn.Module:
    in_channels = 1 if shared else 2
    if kind == "mlp":
        features = _r003_mlp_features(in_channels * DIGIT_PIXELS, hidden, act, dropout)
        width, classifier_hidden = hidden[-1], 0
    else:
        features = _r003_cnn_features(in_channels, channels, act, batchnorm)
        width, classifier_hidden = output_shape(features, (in_channels, 14, 14))[0], hidden[0]
    if not shared:
        return FlatNet(features, _r003_binary(kind, width, classifier_hidden, act))
    digit = _r003_digit(kind, width, classifier_hidden, act) if digit_heads else None
    return FeaturePairNet(features, _r003_binary(kind, 2 * width, classifier_hidden, act),
                          digit)


_R003 = """

    Report 003, table I: the MLP's "feature extraction part consists of 4 linear layers.
    The classifier parts of the MLP are composed of 1 linear layer"; the ConvNet's "feature
    extraction part consists of 3 convolutional layers. The classifier parts of the ConvNet
    are composed of an MLP with 1 hidden layer. Max pooling layers are used in the feature
    extractor." The binary classifier ends in one sigmoid unit (pair logits (0, z):
    cross-entropy on them is the binary cross-entropy). The report gives no kernel size:
    2×2 convolutions, max-pooling after the first two (14 → 13 → 6 → 5 → 2 → 1); with them
    47 ConvNets and 47 MLPs of the widths {16, ..., 512} fall in its 65,000-75,000 budget.
    Its chosen ConvNet [32, 64, 32, 512] has 34,177 parameters with 2×2 kernels (186,049 with
    3×3 same-padded ones): no layout we tried puts it in the budget, so we follow the
    budget. Use ``weighting=comparison`` for its loss, digit1 + digit2 + λ·binary.
"""


@register_model(digit_heads=False)
def r003_mlp(*, hidden: tuple[int, ...] = (128, 64, 32, 256), activation: Activation = "relu",
             dropout: float = 0.0) -> nn.Module:
    """Report 003's vanilla MLP on the flattened pair (its chosen widths: 69,345 parameters)."""
    return _r003("mlp", False, False, hidden, (), activation, dropout, False)


@register_model(digit_heads=False)
def r003_mlp_ws(*, hidden: tuple[int, ...] = (128, 64, 32, 256),
                activation: Activation = "relu", dropout: float = 0.0) -> nn.Module:
    """Report 003's MLP with weight sharing: one extractor per digit, features concatenated."""
    return _r003("mlp", True, False, hidden, (), activation, dropout, False)


@register_model(digit_heads=True)
def r003_mlp_ws_aux(*, hidden: tuple[int, ...] = (128, 64, 32, 256),
                    activation: Activation = "relu", dropout: float = 0.0) -> nn.Module:
    """Report 003's MLP with weight sharing and the digit classifier's auxiliary loss."""
    return _r003("mlp", True, True, hidden, (), activation, dropout, False)


@register_model(digit_heads=False)
def r003_cnn(*, channels: tuple[int, ...] = (32, 64, 32), hidden: tuple[int, ...] = (512,),
             activation: Activation = "relu", batchnorm: bool = False) -> nn.Module:
    """Report 003's vanilla ConvNet on the 2-channel pair (``hidden``: the classifier's)."""
    return _r003("cnn", False, False, hidden, channels, activation, 0.0, batchnorm)


@register_model(digit_heads=False)
def r003_cnn_ws(*, channels: tuple[int, ...] = (32, 64, 32), hidden: tuple[int, ...] = (512,),
                activation: Activation = "relu", batchnorm: bool = False) -> nn.Module:
    """Report 003's ConvNet with weight sharing."""
    return _r003("cnn", True, False, hidden, channels, activation, 0.0, batchnorm)


@register_model(digit_heads=True)
def r003_cnn_ws_aux(*, channels: tuple[int, ...] = (32, 64, 32),
                    hidden: tuple[int, ...] = (512,), activation: Activation = "relu",
                    batchnorm: bool = False) -> nn.Module:
    """Report 003's ConvNet with weight sharing and the digit classifier's auxiliary loss."""
    return _r003("cnn", True, True, hidden, channels, activation, 0.0, batchnorm)


for _builder in (r003_mlp, r003_mlp_ws, r003_mlp_ws_aux, r003_cnn, r003_cnn_ws,
                 r003_cnn_ws_aux):
    _builder.__doc__ = (_builder.__doc__ or "") + _R003
