"""The reports' own networks, as written, where our generic models differ from them.

Each builder quotes the sentences it implements. Where a report leaves a detail open
(a kernel size, a width, a dropout rate), the builder says what we chose; where its
printed parameter count contradicts its printed layers, we follow the layers (the
tests in tests/models/test_reports.py pin every count). Our improvements live in the
generic models of ``zoo`` (the probability head above all), never here.

Read top to bottom: report 000, 001, 003, 004 (report 002's networks are ``zoo``'s
``naive``, ``twin``, ``twin_aux``, ``siamese`` and ``siamese_aux`` with ReLU: its "Linear/
ReLU output layers" on the branches' probabilities are our probability head).
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
from torch import nn

from pairsearch.errors import PairsearchError
from pairsearch.models.blocks import (
    DIGIT_PIXELS,
    NUM_CLASSES,
    Activation,
    ConvStack,
    DigitSoftmax,
    Dropout,
    ElmanRNN,
    MapLinear,
    ModelOutput,
    PatchConv2d,
    make_activation,
    mlp,
    output_shape,
    split_pair,
)
from pairsearch.models.registry import register_model
from pairsearch.models.zoo import FlatNet, TwoBranchNet

Size = Literal["model_1", "model_2"]
# An unstated dropout rate is torch's default, nn.Dropout()'s p = 0.5.
UNSTATED_DROPOUT = 0.5


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


class FeaturePairNet(nn.Module):
    """One extractor per digit, the two feature maps concatenated into the pair classifier.

    Report 003's weight sharing, and table I's count for report 000's model_1 WS.

    "Weight sharing simply splits the input 2-channel image into two 1-channel images and
    then processes them separately with the same feature extractor. The extracted two
    features are then concatenated together to pass through the classifier". With
    ``digit`` classifier: "the extracted two features are passed through the digit
    classifier separately to predict the corresponding digit labels (0-9), and the
    concatenated features are passed through the binary classifier".
    """

    def __init__(self, features: nn.Module, binary: nn.Module, digit: nn.Module | None) -> None:
        super().__init__()
        self.features = features
        self.binary = binary
        self.digit = digit

    def forward(self, x: torch.Tensor) -> ModelOutput:
        a, b = split_pair(x)
        feature_a, feature_b = self.features(torch.cat([a, b])).chunk(2)
        pair = self.binary(torch.cat([feature_a, feature_b], dim=1))
        if self.digit is None:
            return ModelOutput(pair)
        return ModelOutput(pair, self.digit(feature_a), self.digit(feature_b))


# --------------------------------------------------------------------------------------------
# Report 000: LeakyReLU everywhere, 2×2 convolutions.


def _r000_features(size: str, in_channels: int) -> ConvStack:
    """model_1: "Conv2d(2, 16, 2, 1) → leakyRelu → Conv2d(16, 32, 2) → leakyRelu → max
    pool2d(kernel size = 2) → leakyRelu"; model_2: "Conv2d(2, 32, 2) → leakyRelu →
    Conv2d(32, 64, 2) → leakyRelu → max pool2d(kernel size = 2) → Conv2d(64, 128, 2) →
    leakyRelu". Pooling comes before the activation that precedes it in the text: equal
    for LeakyReLU, which is increasing, on a quarter of the values."""
    act = nn.LeakyReLU
    if size == "model_1":
        return ConvStack(PatchConv2d(in_channels, 16, 2), act(), nn.Conv2d(16, 32, 2),
                         nn.MaxPool2d(2), act(), act(), float_output=False)
    return ConvStack(PatchConv2d(in_channels, 32, 2), act(), nn.Conv2d(32, 64, 2),
                     nn.MaxPool2d(2), act(), nn.Conv2d(64, 128, 2), act(),
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
        self.early = ConvStack(PatchConv2d(2, 32, 2), act(), nn.Conv2d(32, 64, 2), act(),
                               float_output=False)
        self.late = ConvStack(nn.MaxPool2d(2), nn.Conv2d(64, 128, 2), act(),
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
    (``head=logits_linear``, the last-layer comparison of reports 001 and 004);
    ``head=probs_mlp`` is our probability head.
"""

_R000_PROBS_LINEAR = """

    ``head=probs_linear`` reads section I.B, "We chose to have two dimensional output
    activated by softmax ... In this way we see the outputs as probabilities", as holding
    for each branch, which runs "through the same layers" as the model: the softmax of each
    digit's 10 outputs, then one Linear(20, 2), no hidden layer. For model_1 it has the
    text's own count, "(20'820 vs 337'216 parameters)": the branch's 20,778 and the
    Linear(20, 2)'s 42 (the softmax has none).
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


# --------------------------------------------------------------------------------------------
# Report 001: ReLU and SGD by default, BatchNorm.


def _r001_cnn(in_channels: int, out: int, act: str, batchnorm: bool,
              channels: tuple[int, ...] = (16, 32), hidden: int = 128) -> nn.Sequential:
    """Two 3×3 convolutions, each with max-pooling, then one hidden layer (by default 16 and
    32 channels, 128 units)."""
    if len(channels) != 2:
        raise PairsearchError(f"bad value {channels!r} for option 'channels' of report 001's "
                              "CNN: needs exactly 2 widths (it has 2 convolutions)")
    layers: list[nn.Module] = []
    width = in_channels
    for index, size in enumerate(channels):
        conv = PatchConv2d if index == 0 else nn.Conv2d
        layers.append(conv(width, size, 3))
        if batchnorm:
            layers.append(nn.BatchNorm2d(size))
        layers += [nn.MaxPool2d(2), make_activation(act)]
        width = size
    features = ConvStack(*layers, float_output=False)
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


# --------------------------------------------------------------------------------------------
# Report 003: feature extractors, a sigmoid binary classifier, concatenated features.


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
    """Table I: Conv2d → ReLU → MaxPool2d → Conv2d → ReLU → MaxPool2d → Conv2d → ReLU."""
    layers: list[nn.Module] = []
    width = in_channels
    for index, size in enumerate(channels):
        conv = PatchConv2d if index == 0 else nn.Conv2d
        layers.append(conv(width, size, 2))
        if batchnorm:
            layers.append(nn.BatchNorm2d(size))
        if index < len(channels) - 1:
            layers.append(nn.MaxPool2d(2))
        layers.append(make_activation(act))
        width = size
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


# --------------------------------------------------------------------------------------------
# Report 004: siamese CNNs and RNNs compared in one last linear layer.


def _r004_activation(name: str) -> nn.Module:
    # "softmax": across the channels at each pixel, as torch's nn.Softmax() chose for a
    # 4-d input when no dim was given (the implicit dim the report's era of torch used).
    return nn.Softmax(dim=1) if name == "softmax" else nn.ReLU()


def _r004_cnn_branch(pool_and_dropout: bool, activation: str = "relu") -> nn.Sequential:
    """Three 3×3 convolutions (16, 32, 64 channels) with ReLU (or softmax), then one linear
    layer to the 10 outputs; CNN 3 adds max-pooling after the second and dropout (rate 0.5)
    after the third."""
    act = functools.partial(_r004_activation, activation)
    layers: list[nn.Module] = [PatchConv2d(1, 16, 3), act(), nn.Conv2d(16, 32, 3)]
    layers += [nn.MaxPool2d(2), act()] if pool_and_dropout else [act()]
    layers += [nn.Conv2d(32, 64, 3), act()]
    features = ConvStack(*layers, float_output=False)
    tail: list[nn.Module] = [Dropout(UNSTATED_DROPOUT)] if pool_and_dropout else []
    shape = output_shape(features, (1, 14, 14))
    return nn.Sequential(features, *tail, MapLinear(shape, NUM_CLASSES))


@register_model(digit_heads=False)
def r004_siamese_cnn(*, shared: bool = True,
                     head: Literal["logits_linear", "probs_mlp"] = "logits_linear") -> nn.Module:
    """Report 004's Siamese CNN 1 (``shared=false``) and 2 (``shared=true``).

    "Model 1: We started with a siamese network with 3 convolutional layers that is fully
    connected at the end ... Weight sharing: no"; "Model 2: In a next step, we added shared
    weights to the CNN siamese network Model 1". "The two outputs of the siamese parts are
    concatenated, flattened and entered into a last linear layer before getting the final
    logits" (one Linear(20, 2)). Kernel sizes and widths are not given: 3×3 convolutions of
    16, 32 and 64 channels (14 → 12 → 10 → 8), then Linear(4096, 10); ReLU between layers
    ("We also use ReLU between layers", said of the best model). ``head=probs_mlp``: ours.
    """
    return TwoBranchNet(lambda: _r004_cnn_branch(False), shared, False, head, 64, "relu")


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


class R004Rnn(nn.Module):
    """Each digit read row by row by one shared Elman RNN; the last state → 10 logits."""

    def __init__(self, hidden: int, head: nn.Module, zero_recurrent: bool = False,
                 layers: int = 1) -> None:
        super().__init__()
        self.rnn = ElmanRNN(input_size=14, hidden_size=hidden, num_layers=layers)
        if zero_recurrent:
            for layer in self.rnn.layers:
                nn.init.zeros_(layer["hh"].weight)
        self.digit = nn.Linear(hidden, NUM_CLASSES)
        self.head = head

    def forward(self, x: torch.Tensor) -> ModelOutput:
        rows = torch.cat([x[:, 0], x[:, 1]])  # (2B, 14 rows, 14 pixels), both digits at once
        logit_a, logit_b = self.digit(self.rnn(rows)).split(x.shape[0])
        return ModelOutput(self.head(torch.cat([logit_a, logit_b], dim=1)), logit_a, logit_b)


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
    if head == "linear":
        layer: nn.Module = nn.Linear(2 * NUM_CLASSES, 2)
    elif head == "longer":
        layer = mlp(2 * NUM_CLASSES, [64, 32], 2, "relu")
    else:
        layer = nn.Sequential(DigitSoftmax(), mlp(2 * NUM_CLASSES, [64], 2, "relu"))
    return R004Rnn(hidden, layer, zero_recurrent=hidden_init == "weights", layers=layers)


__all__ = ["FeaturePairNet", "R000Aux1", "R004Rnn", "SigmoidPair"]
