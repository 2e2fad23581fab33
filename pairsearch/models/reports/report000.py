"""Report 000's networks: LeakyReLU everywhere, 2×2 convolutions, their layers as printed.

Its rows (experiments/report000.toml): model_0 is the generic ``mlp`` with its defaults
(392 → 128 → 64 → 2, 58,690 parameters, table I's count); model_1 and model_2 are
``r000_cnn`` (``size``); model_2_AUX1 is ``r000_cnn_aux1`` (and its digit-target ablation
``r000_cnn_aux1_digits``); the weight-sharing (WS), AUX2 and WS+AUX2 models are ``r000_ws``,
``r000_aux2`` and ``r000_ws_aux``. Each builder quotes the sentences it implements; where
the report's printed parameter counts contradict its printed layers, we follow the layers
(tests/models/test_reports.py pins every count).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from pairsearch.models.blocks import (
    NUM_CLASSES,
    ConvStack,
    Dropout,
    MapLinear,
    ModelOutput,
    conv_layers,
    output_shape,
)
from pairsearch.models.generic import FlatNet, TwoBranchNet
from pairsearch.models.registry import register_model
from pairsearch.models.reports.common import UNSTATED_DROPOUT, FeaturePairNet

Size = Literal["model_1", "model_2"]


def _r000_features(size: str, in_channels: int) -> ConvStack:
    """model_1: "Conv2d(2, 16, 2, 1) → leakyRelu → Conv2d(16, 32, 2) → leakyRelu → max
    pool2d(kernel size = 2) → leakyRelu"; model_2: "Conv2d(2, 32, 2) → leakyRelu →
    Conv2d(32, 64, 2) → leakyRelu → max pool2d(kernel size = 2) → Conv2d(64, 128, 2) →
    leakyRelu". Pooling comes before the activation that precedes it in the text: equal
    for LeakyReLU, which is increasing, on a quarter of the values. model_1's text has two
    LeakyReLUs after its second convolution: the second one follows the stack."""
    if size == "model_1":
        return ConvStack(*conv_layers(in_channels, (16, 32), "leaky_relu", pool_at=(1,)),
                         nn.LeakyReLU(), float_output=False)
    return ConvStack(*conv_layers(in_channels, (32, 64, 128), "leaky_relu", pool_at=(1,)),
                     float_output=False)


def _r000_classifier(size: str, map_shape: tuple[int, ...], out: int) -> nn.Sequential:
    """model_1: "Linear(1568, 16) → leakyRelu → Linear(16, 2)"; model_2: "Linear(3200, 64) →
    leakyRelu → Linear(64, 12) → Dropout → Linear(12, 2)" (no activation after
    Linear(64, 12)). On 14×14 digits model_1's map has 32×6×6 = 1152 values, not 1568."""
    if size == "model_1":
        return nn.Sequential(MapLinear(map_shape, 16), nn.LeakyReLU(), nn.Linear(16, out))
    return nn.Sequential(MapLinear(map_shape, 64), nn.LeakyReLU(), nn.Linear(64, 12),
                         Dropout(UNSTATED_DROPOUT), nn.Linear(12, out))


def _r000_net(size: str, in_channels: int, out: int) -> nn.Sequential:
    features = _r000_features(size, in_channels)
    shape = output_shape(features, (in_channels, 14, 14))
    return nn.Sequential(features, _r000_classifier(size, shape, out))


@register_model(digit_heads=False)
def r000_cnn(*, size: Size = "model_1") -> nn.Module:
    """Report 000's model_1 or model_2, on the 2-channel pair (its layers as printed).

    "We started from two ordinary CNN (convolutional layers for feature detection followed
    by linear layers for classification): model_1 and model_2 which have the same
    architectures but differ in depth and size." model_1 has 20,706 parameters and model_2
    247,110 by their printed layers; the report prints 13,154 and 113,506, which no reading
    of those layers gives (we follow the layers). model_2's dropout rate is unstated: 0.5.
    """
    features = _r000_features(size, 2)
    return FlatNet(features, _r000_classifier(size, output_shape(features, (2, 14, 14)), 2))


class R000Aux1(nn.Module):
    """model_2 with an auxiliary output after its second convolution.

    The auxiliary classifier predicts the pair (``digits=False``: 2 outputs, the report's
    text) or both digits' classes (``digits=True``: 20 outputs, two sets of digit logits).
    """

    def __init__(self, aux_head: str = "model_1", digits: bool = False) -> None:
        super().__init__()
        act = nn.LeakyReLU
        self.digits = digits
        out = 2 * NUM_CLASSES if digits else 2
        # model_2's stack (_r000_features) cut after its second convolution's activation.
        self.early = ConvStack(*conv_layers(2, (32, 64), "leaky_relu"), float_output=False)
        self.late = ConvStack(nn.MaxPool2d(2), *conv_layers(64, (128,), "leaky_relu",
                                                            patch_first=False),
                              float_output=False)
        self.aux = nn.Sequential(nn.MaxPool2d(2), act())
        self.aux_classifier = (_r000_classifier("model_1", (64, 6, 6), out)
                               if aux_head == "model_1" else MapLinear((64, 6, 6), out))
        self.classifier = _r000_classifier("model_2", (128, 5, 5), 2)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        early = self.early(x)
        pair = self.classifier(self.late(early))
        aux = self.aux_classifier(self.aux(early))
        if self.digits:
            digit_a, digit_b = aux.split(NUM_CLASSES, dim=1)
            return ModelOutput(pair, digit_a, digit_b)
        return ModelOutput(pair, pair_aux=aux)


@register_model(digit_heads=False, pair_aux=True)
def r000_cnn_aux1(*, aux_head: Literal["model_1", "linear"] = "model_1") -> nn.Module:
    """Report 000's model_2_AUX1: an auxiliary pair output after model_2's 2nd convolution.

    "To improve the learning of model_2, we branched an auxiliary output after its second
    convolutional layer as suggested in ([2]), which runs through a classifier similar as
    the one of model_1. This intermediate prediction is used to compute an auxiliary loss
    (using the same target as the final output) which is then added to the final loss."
    model_1's classifier (max-pool → LeakyReLU → Linear(2304, 16) → LeakyReLU →
    Linear(16, 2)) reads the second convolution's output; use ``lambda=1`` ("added").

    ``aux_head=linear`` reads the table instead: AUX1 has 6,274 parameters more than model_2
    (119,780 against 113,506), exactly one Linear(64·7·7, 2) on the pooled map of the second
    convolution (7×7 at the report's padding, 6×6 here); no hidden layer.
    """
    return R000Aux1(aux_head)


@register_model(digit_heads=True)
def r000_cnn_aux1_digits(*, aux_head: Literal["model_1", "linear"] = "model_1") -> nn.Module:
    """Ablation of report 000's model_2_AUX1: the auxiliary output predicts the digits.

    Not the report's network: its text gives the auxiliary output "the same target as the
    final output". This variant tests whether table I's 93% needs digit information: the
    same branch after model_2's second convolution (model_1's classifier) ends in 20
    outputs, each digit's 10 class logits, trained by the digit losses (``lambda=1``:
    "added to the final loss").
    """
    return R000Aux1(aux_head, digits=True)


def _r000_two_branch(size: str, shared: bool, digit_heads: bool, head: str,
                     head_hidden: int, branch_out: int = NUM_CLASSES) -> TwoBranchNet:
    # Each digit runs through the model's own layers on one channel, ending in 10 outputs.
    return TwoBranchNet(lambda: _r000_net(size, 1, branch_out), shared, digit_heads, head,
                        head_hidden, "leaky_relu", branch_out)


_R000_SECONDARY = """

    Report 000: "the input will be split in two images which will run through the same
    layers independently (a feature detector and a classifier) ... and then further layers
    take each of these images features and learn to compare them." Each digit runs through
    model_1's or model_2's layers on one channel, the classifier ending in 10 outputs; the
    further layers are not given: by default one Linear(20, 2) on the two outputs
    (``head=logits_linear``, the last-layer comparison of reports 001 and 004, and the
    meaning of every study stored before report000's faithful grid chose ``probs_linear``
    for the digit-loss networks); ``head=probs_mlp`` is our probability head.
"""

_R000_PROBS_LINEAR = """

    ``head=probs_linear`` reads section I.B, "We chose to have two dimensional output
    activated by softmax ... In this way we see the outputs as probabilities", as holding
    for each branch, which runs "through the same layers" as the model: the softmax of each
    digit's 10 outputs, then one Linear(20, 2), no hidden layer. For model_1 it has the
    text's own count, "(20'820 vs 337'216 parameters)": the branch's 20,778 and the
    Linear(20, 2)'s 42 (the softmax has none). It is the reading report000's faithful
    experiment runs for the digit-loss networks: the text reads the classifier outputs as
    "some chosen probability distribution of the two digits", and finds that "even though
    the digit recognition accuracy is around 94% for the best models, their final accuracy
    is even bigger, around 96%", which a probability input gives and the logits do not.
"""

R000Head = Literal["logits_linear", "probs_mlp", "probs_linear"]


@register_model(digit_heads=False)
def r000_ws(*, size: Size = "model_1",
            head: Literal["logits_linear", "probs_mlp", "features_linear"] = "logits_linear",
            head_hidden: int = 64, branch_out: int = NUM_CLASSES) -> nn.Module:
    """Report 000's model_1_ws / model_2_ws: weight sharing, no auxiliary loss.

    Without a digit loss nothing fixes the width of each branch's output; ``branch_out``
    sets it: 10 by default (as the AUX2 models), 2 reads "the same layers" literally (the
    printed classifiers end in Linear(16, 2) and Linear(12, 2)), so the further layers
    compare 2 + 2 values.

    ``head=features_linear`` reads table I's count instead: model_1 WS has 6,770
    parameters, exactly the two shared convolutions (80 + 2,080) and one Linear(2·32·6·6, 2)
    (4,610) on the two digits' concatenated feature maps ("further layers take each of
    these images features and learn to compare them"), with no classifier per digit.
    For model_2 the same reading gives 54,114 against the table's 56,114.
    """
    if head == "features_linear":
        features = _r000_features(size, 1)
        shape = output_shape(features, (1, 14, 14))
        return FeaturePairNet(features, MapLinear((2 * shape[0], *shape[1:]), 2), None)
    return _r000_two_branch(size, True, False, head, head_hidden, branch_out)


@register_model(digit_heads=True)
def r000_aux2(*, size: Size = "model_1", head: R000Head = "logits_linear",
              head_hidden: int = 64) -> nn.Module:
    """Report 000's model_1_AUX2 / model_2_AUX2: digit losses on two unshared branches."""
    return _r000_two_branch(size, False, True, head, head_hidden)


@register_model(digit_heads=True)
def r000_ws_aux(*, size: Size = "model_1", head: R000Head = "logits_linear",
                head_hidden: int = 64) -> nn.Module:
    """Report 000's model_1_ws_AUX2 / model_2_ws_AUX2: a shared branch with digit losses.

    "taking advantage of the availability of the classes of the two digits in each pair,
    we branch out the digits prediction for an auxiliary loss".
    """
    return _r000_two_branch(size, True, True, head, head_hidden)


for _builder in (r000_ws, r000_aux2, r000_ws_aux):
    _builder.__doc__ = (_builder.__doc__ or "") + _R000_SECONDARY
for _builder in (r000_aux2, r000_ws_aux):
    _builder.__doc__ = (_builder.__doc__ or "") + _R000_PROBS_LINEAR
