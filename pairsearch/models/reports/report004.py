"""Report 004's networks: siamese CNNs and RNNs compared in one last linear layer, and its
Best Model.

Its rows (experiments/report004.toml), in table I's order:

- baseline, "a neural network with only one hidden linear layer": the generic ``mlp`` with
  ``hidden=128 activation=relu``, or ``r004_linear`` with its softmax activation;
- linear siamese 1 and 2, "a fully connected siamese network" without and with shared
  weights: the generic ``twin`` and ``siamese`` with ``branch=mlp hidden=128
  head=logits_linear activation=relu``, or ``r004_linear`` (``weights=unshared`` /
  ``weights=shared``) with its softmax activation;
- Siamese CNN 1 and 2: ``r004_siamese_cnn`` (``shared=false`` / ``shared=true``);
- Siamese CNN 3: ``r004_siamese_cnn3``;
- Siamese RNN 1 and 2: ``r004_rnn`` (``head=linear`` / ``head=longer``);
- the Best Model, the deep siamese CNN: ``deep_aux`` with ``head=logits_linear`` (its
  dropout rate is not given; the experiment sets ``dropout=0.5``).

The generic models stay in ``models.generic``; the others are here, each quoting the
sentences it implements.
"""

from __future__ import annotations

import functools
from typing import Literal

from torch import nn

from pairsearch.models.blocks import (
    DIGIT_PIXELS,
    NUM_CLASSES,
    Activation,
    ConvStack,
    DigitSoftmax,
    Head,
    Dropout,
    MapLinear,
    conv_layers,
    mlp,
    output_shape,
)
from pairsearch.models.generic import FlatNet, SiameseRnn, TwoBranchNet
from pairsearch.models.registry import register_model
from pairsearch.models.reports.common import UNSTATED_DROPOUT


def _r004_activation(name: str) -> nn.Module:
    # "softmax": across the channels at each pixel, as torch's nn.Softmax() chose for a
    # 4-d input when no dim was given (the implicit dim the report's era of torch used).
    return nn.Softmax(dim=1) if name == "softmax" else nn.ReLU()


def _r004_cnn_branch(pool_and_dropout: bool, activation: str = "relu") -> nn.Sequential:
    """Three 3×3 convolutions (16, 32, 64 channels) with ReLU (or softmax), then one linear
    layer to the 10 outputs; CNN 3 adds max-pooling after the second (before its activation)
    and dropout (rate 0.5) after the third."""
    act = functools.partial(_r004_activation, activation)
    features = ConvStack(*conv_layers(1, (16, 32, 64), act, kernel_size=3,
                                      pool_at=(1,) if pool_and_dropout else ()),
                         float_output=False)
    tail: list[nn.Module] = [Dropout(UNSTATED_DROPOUT)] if pool_and_dropout else []
    shape = output_shape(features, (1, 14, 14))
    return nn.Sequential(features, *tail, MapLinear(shape, NUM_CLASSES))


@register_model(digit_heads=False)
def r004_linear(*, weights: Literal["none", "unshared", "shared"] = "none", hidden: int = 128,
                activation: Literal["softmax", "relu"] = "softmax") -> nn.Module:
    """Report 004's baseline and linear siamese networks 1 and 2, softmax activation.

    ``weights=none``: the baseline; ``unshared`` / ``shared``: linear siamese 1 / 2.
    Baseline: "The baseline model is a neural network with only one hidden linear layer. We
    used softmax as an activation function, the loss is calculated with cross-entropy and
    the optimizer used is SGD. The network is fully connected, and the two images are
    flattened into a one-dimensional input tensor. The output consists of 2 logits".
    Linear siamese networks: "The first model is a fully connected siamese network: Weight
    sharing: no; Activation function: softmax"; "This model was extended by adding shared
    weights ... the two outputs of the siamese parts are concatenated, flattened and
    entered into a last linear layer before getting the final logits".

    ``activation=softmax`` (default) reads "softmax as an activation function" literally:
    a softmax over the hidden units after the hidden layer (torch's ``nn.Softmax(dim=1)``).
    ``activation=relu`` is the same network as the generic ``mlp`` / ``twin`` / ``siamese``
    with ``branch=mlp head=logits_linear`` (same parameters, same initial weights for a
    seed). The hidden width is not given: 128. Each siamese part maps a digit to 10
    outputs (hidden → 10), the last linear layer their 20 to the 2 logits.
    """
    make_act = functools.partial(_r004_activation, activation)  # dim 1: the hidden units
    if weights == "none":
        return FlatNet(nn.Flatten(), mlp(2 * DIGIT_PIXELS, [hidden], 2, make_act))
    return TwoBranchNet(
        lambda: nn.Sequential(nn.Flatten(), mlp(DIGIT_PIXELS, [hidden], NUM_CLASSES, make_act)),
        weights == "shared", False, "logits_linear", 64, "relu")


@register_model(digit_heads=False)
def r004_siamese_cnn(*, shared: bool = True,
                     head: Literal["logits_linear", "probs_mlp"] = "logits_linear",
                     activation: Literal["relu", "softmax"] = "relu") -> nn.Module:
    """Report 004's Siamese CNN 1 (``shared=false``) and 2 (``shared=true``).

    "Model 1: We started with a siamese network with 3 convolutional layers that is fully
    connected at the end ... Weight sharing: no"; "Model 2: In a next step, we added shared
    weights to the CNN siamese network Model 1". "The two outputs of the siamese parts are
    concatenated, flattened and entered into a last linear layer before getting the final
    logits" (one Linear(20, 2)). Kernel sizes and widths are not given: 3×3 convolutions of
    16, 32 and 64 channels (14 → 12 → 10 → 8), then Linear(4096, 10); ReLU between layers
    ("We also use ReLU between layers", said of the best model). ``head=probs_mlp``: ours.
    Their lists say "Activation function: softmax": ``activation=softmax`` puts a softmax
    over the channels after each convolution, as Siamese CNN 3's option does.
    """
    return TwoBranchNet(lambda: _r004_cnn_branch(False, activation), shared, False, head, 64,
                        "relu")


@register_model(digit_heads=True)
def r004_siamese_cnn3(*, head: Literal["logits_linear", "probs_mlp", "probs_linear"] =
                      "logits_linear",
                      activation: Literal["relu", "softmax"] = "relu") -> nn.Module:
    """Report 004's Siamese CNN 3: shared weights, max pooling, dropout, auxiliary losses.

    "This model consists of a siamese network with convolutional layers and ... Other
    features: max pooling and dropout. This model uses auxiliary losses, meaning each part
    of the siamese network first predicts the cipher on the image ... The logits of these
    sub-parts are then concatenated and flattened and used as input to a linear layer that
    predicts the final binary logits." Model 2's three convolutions, max-pooling after the
    second (14 → 12 → 10 → 5 → 3), dropout (rate not given: 0.5) before Linear(576, 10);
    use ``lambda=0.8`` for its weights w = [0.8, 0.8, 1]. ``head=probs_mlp``: ours.

    Its list says "Activation function: softmax", as for every model but the RNN's "tanh in
    RNN and softmax for final logits"; only the best model says "We also use ReLU between
    layers". ``activation=relu`` (default) reads softmax as the output's;
    ``activation=softmax`` puts a softmax over the channels after each convolution.
    ``head=probs_linear`` reads it as the sub-parts' output activation: each part's 10
    outputs through a softmax, then the one "linear layer that predicts the final binary
    logits" (Linear(20, 2), no hidden layer).
    """
    return TwoBranchNet(lambda: _r004_cnn_branch(True, activation), True, True, head, 64,
                        "relu")


@register_model(digit_heads=True)
def r004_rnn(*, hidden: int = 64,
             head: Literal["linear", "longer", "probs_mlp"] = "linear",
             hidden_init: Literal["state", "weights"] = "state",
             layers: int = 1) -> nn.Module:
    """Report 004's Siamese RNN 1 (``head=linear``) and 2 (``head=longer``).

    "we used Elman RNN's which consists of three layers and a set of context units that form
    the internal memory. We initialised the hidden weights to 0 and use tanh as activation
    function. The siamese network consists of two Elman RNN which are fully connected at the
    end. Their outputs are flattened, concatenated and put through another linear layer to
    give the final result"; RNN 2: "the same architecture, but with a longer linear model at
    the end and tried training for a longer period of time". Elman's three layers are the
    input, the recurrent hidden layer and the output; the zero initial state is ``ElmanRNN``'s.
    The hidden size is not given: 64. The longer model: Linear(20, 64) → ReLU → Linear(64,
    32) → ReLU → Linear(32, 2). Use ``lambda=0.8``. ``head=probs_mlp``: ours, on the
    softmax of the two outputs.

    "We initialised the hidden weights to 0" reads two ways: ``hidden_init=state`` (the
    initial hidden state is zero; the recurrent weights keep torch's uniform
    initialisation) or ``hidden_init=weights`` (the hidden-to-hidden weights start at zero,
    so the untrained network sees only the last row of each digit).

    "Elman RNN's which consists of three layers" reads two ways too: Elman's input, hidden
    and output layers (``layers=1``, one recurrent layer) or three stacked recurrent
    layers (``layers=3``, torch's ``nn.RNN(num_layers=3)``).
    """
    # The head is made before the RNN (a network's initial weights depend on that order).
    if head == "linear":
        layer: nn.Module = nn.Linear(2 * NUM_CLASSES, 2)
    elif head == "longer":
        layer = mlp(2 * NUM_CLASSES, [64, 32], 2, "relu")
    else:
        layer = nn.Sequential(DigitSoftmax(), mlp(2 * NUM_CLASSES, [64], 2, "relu"))
    return SiameseRnn(hidden, layers, lambda: layer, zero_recurrent=hidden_init == "weights")


# --------------------------------------------------------------------------------------------
# The Best Model: the deep siamese CNN.


def _deep_branch(base: int, act: str, dropout: float, layout: str,
                 dropout_layers: str) -> nn.Sequential:
    """Six 3×3 convolutions, each doubling the channels; BN in the middle, dropout late."""
    widths = [base * 2 ** i for i in range(6)]
    # Dropout after convolutions 4, 5 and 6, or only between 4 and 5 and between 5 and 6.
    dropout_at = (3, 4, 5) if dropout_layers == "after_last_three" else (3, 4)
    # The convolutions form a ConvStack, so --precision bf16 covers them (see ConvStack).
    if layout == "padded":
        features = ConvStack(*conv_layers(1, widths, act, kernel_size=3, padding=1,
                                          batchnorm=(2, 3), pool_at=(1, 3),  # 14 → 7 → 3
                                          pool_after_activation=True, dropout=dropout,
                                          dropout_at=dropout_at))
        return nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(widths[-1], NUM_CLASSES))
    # Unpadded: 14 → 12 → 10 → 8 → 6 → 4 → 2, no pooling; the 2×2 map into one linear layer.
    features = ConvStack(*conv_layers(1, widths, act, kernel_size=3, batchnorm=(2, 3),
                                      dropout=dropout, dropout_at=dropout_at))
    return nn.Sequential(features, MapLinear(output_shape(features, (1, 14, 14)), NUM_CLASSES))


@register_model(digit_heads=True)
def deep_aux(*, base_channels: int = 4, head_hidden: int = 64, head: Head = "probs_mlp",
             activation: Activation = "relu", dropout: float = 0.25,
             layout: Literal["padded", "unpadded"] = "padded",
             dropout_layers: Literal["after_last_three", "between_last_three"] =
             "after_last_three") -> nn.Module:
    """Deep 6-conv siamese with BatchNorm and dropout, digit heads (report 004 Best Model).

    Report 004: "This model consists of 6 convolutional layers, each doubling the number of
    channels. In the middle, we also added batch normalisation to make the architecture
    more stable and dropout to reduce overfitting. We also use ReLU between layers and keep
    using dropout between the last three convolutional layers." Its head is ours by default
    (``head=logits_linear`` is report 004's, with which ``pairsearch run report004`` builds
    it); use ``lambda=0.8`` for report 004's loss weights [0.8, 0.8, 1]. The first width is
    not given: ``base_channels`` (4: 4 to 128 channels).

    Two readings the text leaves open, as options:

    - ``layout=padded`` (default): padded 3×3 convolutions with 2×2 max-pooling after the
      second and fourth (14 → 7 → 3), then a global average and Linear(width, 10);
      ``layout=unpadded``: unpadded 3×3 convolutions and no pooling, which the text never
      names (14 → 12 → 10 → 8 → 6 → 4 → 2), the 2×2 map into Linear(4·width, 10).
    - ``dropout_layers=after_last_three`` (default): dropout after each of the last three
      convolutions; ``between_last_three``: "between the last three convolutional layers"
      read literally, after the fourth and the fifth only.

    BatchNorm follows the third and fourth convolutions ("in the middle") in both layouts.
    """
    return TwoBranchNet(lambda: _deep_branch(base_channels, activation, dropout, layout,
                                             dropout_layers), True, True,
                        head, head_hidden, activation)
