"""The generic networks: architectures with options, not tied to one report's text.

Every model maps a (B, 2, 14, 14) batch of digit pairs to a ``ModelOutput``
(pair logits, digit logits of a and b or ``None``). Read top to bottom: plain
networks on the whole pair (``mlp``, ``cnn``, ``cnn_aux1``), two-branch networks
(twin = one branch per digit, siamese = one shared branch, with or without digit heads),
report 002's naive model and our soft version of it, and the siamese Elman RNN.

Several reports' networks are these models with some options set: report 000's model_0
and report 001's FNN are ``mlp``, report 002's five networks are ``naive``, ``twin``,
``twin_aux``, ``siamese`` and ``siamese_aux`` (with ReLU), report 004's baseline and linear
siamese networks are ``mlp``, ``twin`` and ``siamese`` (see ``reports.report004``). The
networks a report describes that no generic model reproduces live in ``reports``, one
module per report. The network classes here (``FlatNet``, ``TwoBranchNet``, ``SiameseRnn``)
and ``make_head`` serve those too.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from pairsearch.models.blocks import (
    NUM_CLASSES,
    Activation,
    Branch,
    ConvStack,
    DigitSoftmax,
    ElmanRNN,
    Head,
    ModelOutput,
    cnn_branch,
    conv_layers,
    conv_stack,
    make_activation,
    mlp,
    mlp_branch,
    output_shape,
    split_pair,
)
from pairsearch.errors import PairsearchError
from pairsearch.models.registry import register_model

# --------------------------------------------------------------------------------------------
# Networks that see the pair as one input (no knowledge that it is two digits).


class FlatNet(nn.Module):
    """Features of the whole 2×14×14 pair → pair logits."""

    def __init__(self, features: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(self.classifier(self.features(x)))


@register_model(digit_heads=False, name="mlp")
def mlp_pair(*, hidden: tuple[int, ...] = (128, 64), activation: Activation = "leaky_relu",
             batchnorm: bool = False, dropout: float = 0.0) -> nn.Module:
    """Flattened pair → MLP → 2 (report 000 model_0, 001 FNN(+BN), 004 baseline).

    The defaults are report 000's model_0: 392→128→64→2, 58,690 parameters.
    ``batchnorm=true`` is report 001's FNN + BN.
    """
    return FlatNet(nn.Flatten(), mlp(2 * 14 * 14, hidden, 2, activation, batchnorm, dropout))


@register_model(digit_heads=False)
def cnn(*, channels: tuple[int, ...] = (16, 32), hidden: tuple[int, ...] = (16,),
        activation: Activation = "leaky_relu", batchnorm: bool = False,
        dropout: float = 0.0) -> nn.Module:
    """2-channel CNN on the pair (report 000 model_1 / model_2, 001 CNN + BN).

    Defaults are model_1: Conv(2,16,2) → Conv(16,32,2) → MaxPool(2) → Linear(1152,16) → 2.
    ``channels=32,64,128 hidden=64,12`` is model_2.
    """
    features = conv_stack(2, channels, activation, batchnorm)
    shape = output_shape(features, (2, 14, 14))
    return FlatNet(features, mlp(shape, hidden, 2, activation, batchnorm, dropout))


class CnnAux1(nn.Module):
    """Report 000's model_2 with an intermediate pair output after the second convolution."""

    def __init__(self, channels: tuple[int, ...], hidden: tuple[int, ...], aux_hidden: int,
                 act: str, batchnorm: bool, dropout: float) -> None:
        super().__init__()
        self.early = conv_stack(2, channels[:2], act, batchnorm)
        early_shape = output_shape(self.early, (2, 14, 14))
        self.aux_classifier = mlp(early_shape, [aux_hidden], 2, act, batchnorm)
        # The rest of the stack continues the first two convolutions: no pooling.
        self.late = ConvStack(*conv_layers(channels[1], channels[2:], act, batchnorm=batchnorm,
                                           patch_first=False),
                              float_output=False)  # read by MapLinear
        late_shape = output_shape(nn.Sequential(self.early, self.late), (2, 14, 14))
        self.classifier = mlp(late_shape, hidden, 2, act, batchnorm, dropout)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        early = self.early(x)
        return ModelOutput(self.classifier(self.late(early)), pair_aux=self.aux_classifier(early))


@register_model(digit_heads=False, pair_aux=True)
def cnn_aux1(*, channels: tuple[int, ...] = (32, 64, 128), hidden: tuple[int, ...] = (64, 12),
             aux_hidden: int = 16, activation: Activation = "leaky_relu",
             batchnorm: bool = False, dropout: float = 0.0) -> nn.Module:
    """CNN with an intermediate auxiliary pair output (report 000 model_2 AUX1).

    The auxiliary classifier (model_1's: Linear → act → Linear(·, 2)) reads the
    features after the second convolution and max-pool and is trained on the
    pair target; its loss is weighted by ``lambda``. Needs at least 3 channels.
    """
    if len(channels) < 3:
        raise PairsearchError(f"bad value {channels!r} for option 'channels' of cnn_aux1: "
                              "needs at least 3 convolutions (the aux output branches after 2)")
    return CnnAux1(channels, hidden, aux_hidden, activation, batchnorm, dropout)


# --------------------------------------------------------------------------------------------
# Two-branch networks: each digit goes through a branch, a head compares the two outputs.


class TwoBranchNet(nn.Module):
    """Digit a → branch_a, digit b → branch_b, the two outputs → comparison head.

    With ``shared=True`` both digits go through the same branch (weight sharing, in one
    batched call). With ``digit_heads=True`` the 10 branch outputs are the digit logits
    that an auxiliary loss trains. The head (``make_head``):

    - ``probs_mlp`` (ours, the default): the softmax of both outputs → Linear(20, hidden)
      → act → Linear(hidden, 2). On 1000 pairs, 25 epochs, siamese_aux reached 96–97% test
      accuracy with it against 88–91% with logits (docs/results.md);
    - ``logits_mlp``: the same MLP on the raw outputs;
    - ``logits_linear``: one Linear(20, 2) on the concatenated outputs (reports 001 and 004
      compare the two digits "in the last layer");
    - ``probs_linear``: the softmax of each output, then that one Linear(20, 2), no hidden
      layer. Report 000, section I.B: "We chose to have two dimensional output activated by
      softmax ... In this way we see the outputs as probabilities", and each digit "will
      run through the same layers independently (a feature detector and a classifier)", so
      each branch's 10 outputs reach the further layers as probabilities; with model_1's
      branch it gives the text's own count for model_1 WS+AUX, "20'820 vs 337'216
      parameters" (the softmax has none);
    - ``act_linear``: the network's activation on the concatenated outputs, then that
      Linear(20, 2), as when the activation sits between every pair of layers.
    """

    def __init__(self, make_branch, shared: bool, digit_heads: bool, head: str,
                 head_hidden: int, act: str, branch_out: int = NUM_CLASSES) -> None:
        super().__init__()
        self.shared = shared
        self.digit_heads = digit_heads
        self.head_probs = head == "probs_mlp"
        self.branch_a = make_branch()
        self.branch_b = self.branch_a if shared else make_branch()
        # branch_out: the width of each branch's output (10 digit logits unless a report
        # prints another; report 000's model_1 layers end in Linear(16, 2)).
        self.head = make_head(head, 2 * branch_out, head_hidden, act)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        a, b = split_pair(x)
        if self.shared:
            out_a, out_b = self.branch_a(torch.cat([a, b])).chunk(2)
        else:
            out_a, out_b = self.branch_a(a), self.branch_b(b)
        pair = self.head(_head_features(out_a, out_b, self.head_probs))
        if self.digit_heads:
            return ModelOutput(pair, out_a, out_b)
        return ModelOutput(pair)


def make_head(head: str, in_features: int, hidden: int, act: str) -> nn.Module:
    """The comparison head: an MLP with one hidden layer, or one linear layer (after the
    activation, for ``act_linear``; after each digit's softmax, for ``probs_linear``).

    ``probs_mlp``'s softmax is applied by the network before its head (``_head_features``);
    ``probs_linear`` carries its own (``DigitSoftmax``), so the head alone is the reading.

    Args:
        head: ``probs_mlp``, ``logits_mlp``, ``logits_linear``, ``probs_linear`` or
            ``act_linear`` (see ``TwoBranchNet``).
        in_features: The two branch outputs' width together (20 for two digits' logits).
        hidden: The MLP's hidden width (MLP heads only).
        act: The activation's name (MLP heads and ``act_linear``).

    Returns:
        The head, mapping the concatenated branch outputs to 2 pair logits.
    """
    if head == "logits_linear":
        return nn.Linear(in_features, 2)
    if head == "probs_linear":
        return nn.Sequential(DigitSoftmax(), nn.Linear(in_features, 2))
    if head == "act_linear":
        return nn.Sequential(make_activation(act), nn.Linear(in_features, 2))
    return mlp(in_features, [hidden], 2, act)


def _head_features(out_a: torch.Tensor, out_b: torch.Tensor, probs: bool) -> torch.Tensor:
    if probs:
        return torch.cat([out_a.softmax(dim=1), out_b.softmax(dim=1)], dim=1)
    return torch.cat([out_a, out_b], dim=1)


def _branch_factory(branch: str, channels: tuple[int, ...], hidden: tuple[int, ...], act: str,
                    batchnorm: bool, dropout: float):
    """A function making one fresh digit branch (called twice for unshared branches)."""
    if branch == "cnn":
        return lambda: cnn_branch(channels, hidden[0], act, batchnorm, dropout)
    return lambda: mlp_branch(hidden, act, batchnorm, dropout)


def _two_branch(shared: bool, digit_heads: bool, branch: str, channels: tuple[int, ...],
                hidden: tuple[int, ...], head_hidden: int, act: str, batchnorm: bool,
                dropout: float, head: str) -> TwoBranchNet:
    make = _branch_factory(branch, channels, hidden, act, batchnorm, dropout)
    return TwoBranchNet(make, shared, digit_heads, head, head_hidden, act)


# The four two-branch models share one signature; ``hidden`` is the CNN branch's
# single hidden width (its first value) or the MLP branch's hidden widths.
_TWO_BRANCH_DOC = """

    Options: ``branch`` cnn (report 000 model_1 branch: Conv(1,16,2) → Conv(16,32,2)
    → MaxPool → Linear(1152,24) → 10) or mlp (196 → ``hidden`` → 10, reports 003/004);
    ``head`` probs_mlp (softmax of both branch outputs → Linear(20, ``head_hidden``) → act →
    Linear(·, 2)), logits_mlp (the raw outputs into that MLP), logits_linear (one
    Linear(20, 2)) or probs_linear (softmax of both outputs → one Linear(20, 2)).
"""


@register_model(digit_heads=False)
def twin(*, branch: Branch = "cnn", channels: tuple[int, ...] = (16, 32),
         hidden: tuple[int, ...] = (24,), head_hidden: int = 64, head: Head = "probs_mlp",
         activation: Activation = "leaky_relu", batchnorm: bool = False,
         dropout: float = 0.0) -> nn.Module:
    """One unshared branch per digit + comparison head (report 002 Model3)."""
    return _two_branch(False, False, branch, channels, hidden, head_hidden, activation,
                       batchnorm, dropout, head)


@register_model(digit_heads=True)
def twin_aux(*, branch: Branch = "cnn", channels: tuple[int, ...] = (16, 32),
             hidden: tuple[int, ...] = (24,), head_hidden: int = 64, head: Head = "probs_mlp",
             activation: Activation = "leaky_relu", batchnorm: bool = False,
             dropout: float = 0.0) -> nn.Module:
    """Unshared branches with digit heads (report 002 Model2: auxiliary loss, no sharing)."""
    return _two_branch(False, True, branch, channels, hidden, head_hidden, activation,
                       batchnorm, dropout, head)


@register_model(digit_heads=False)
def siamese(*, branch: Branch = "cnn", channels: tuple[int, ...] = (16, 32),
            hidden: tuple[int, ...] = (24,), head_hidden: int = 64, head: Head = "probs_mlp",
            activation: Activation = "leaky_relu", batchnorm: bool = False,
            dropout: float = 0.0) -> nn.Module:
    """One shared branch = weight sharing (report 002 Model1: sharing, no auxiliary loss)."""
    return _two_branch(True, False, branch, channels, hidden, head_hidden, activation,
                       batchnorm, dropout, head)


@register_model(digit_heads=True)
def siamese_aux(*, branch: Branch = "cnn", channels: tuple[int, ...] = (16, 32),
                hidden: tuple[int, ...] = (24,), head_hidden: int = 64, head: Head = "probs_mlp",
                activation: Activation = "leaky_relu", batchnorm: bool = False,
                dropout: float = 0.0) -> nn.Module:
    """Shared branch + digit heads (report 002 Model4; our improved model for every report).

    Report 002: "The 4 other architectures implement weight sharing and/or auxiliary loss
    involving Linear/ReLU output layers in order to refine the output", on the branches'
    probabilities ("the importance for the network to access such probabilities rather
    than a discrete output"). The defaults are ../shared/notes' network: 31,556 parameters.
    """
    return _two_branch(True, True, branch, channels, hidden, head_hidden, activation,
                       batchnorm, dropout, head)


for _builder in (twin, twin_aux, siamese, siamese_aux):
    _builder.__doc__ = (_builder.__doc__ or "") + _TWO_BRANCH_DOC


def _digit_logits(branch_a: nn.Module, branch_b: nn.Module, shared: bool,
                  x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = split_pair(x)
    if shared:
        return branch_a(torch.cat([a, b])).chunk(2)
    return branch_a(a), branch_b(b)


class ArgmaxNaive(nn.Module):
    """Two digit classifiers; the pair is predicted from their predicted classes.

    The pair logits are (1, 0) or (0, 1): softmax and argmax read them as the decision,
    and they carry no gradient (nothing after the classifiers is learned).
    """

    def __init__(self, make_branch, shared: bool) -> None:
        super().__init__()
        self.shared = shared
        self.branch_a = make_branch()
        self.branch_b = self.branch_a if shared else make_branch()

    def forward(self, x: torch.Tensor) -> ModelOutput:
        logit_a, logit_b = _digit_logits(self.branch_a, self.branch_b, self.shared, x)
        le = (logit_a.detach().argmax(dim=1) <= logit_b.detach().argmax(dim=1)).to(logit_a.dtype)
        return ModelOutput(torch.stack([1 - le, le], dim=1), logit_a, logit_b)


@register_model(digit_heads=True, pair_loss=False)
def naive(*, branch: Branch = "cnn", channels: tuple[int, ...] = (16, 32),
          hidden: tuple[int, ...] = (24,), shared: bool = False,
          activation: Activation = "leaky_relu", batchnorm: bool = False,
          dropout: float = 0.0) -> nn.Module:
    """Report 002's naive model: two digit classifiers, a ≤ b read from their classes.

    Report 002: "The first one, a naive implementation, trivially trains 2 simple networks
    in parallel on the pairs of the images and outputs the comparison", and "in order to
    train its 2 networks, the Naive implementation exclusively uses the auxiliary loss
    (Figure 1), since a simple comparison cannot send any gradient in the backward pass."
    So the loss is the two digit losses alone: ``comparison_loss`` and ``lambda`` do not
    apply. ``shared=true`` makes it one classifier. Our ``naive_prob`` trains the
    comparison too, through P(a ≤ b).
    """
    return ArgmaxNaive(_branch_factory(branch, channels, hidden, activation, batchnorm,
                                       dropout), shared)


class NaiveNet(nn.Module):
    """Digit classifiers only; the pair output is P(a ≤ b) from the two class distributions.

    P(a ≤ b) = Σ_i p_a(i) · Σ_{j ≥ i} p_b(j). The pair logits are
    ``[log(1 − P), log P]`` so that softmax gives back (1 − P, P); unlike report
    002's argmax comparison, gradients from the comparison loss do reach the
    classifiers.
    """

    def __init__(self, make_branch, shared: bool) -> None:
        super().__init__()
        self.shared = shared
        self.branch_a = make_branch()
        self.branch_b = self.branch_a if shared else make_branch()
        # upper[i, j] = 1 where j ≥ i: p_a @ upper @ p_b sums p_a(i) p_b(j) over i ≤ j.
        self.register_buffer("upper", torch.triu(torch.ones(NUM_CLASSES, NUM_CLASSES)),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        logit_a, logit_b = _digit_logits(self.branch_a, self.branch_b, self.shared, x)
        p_a, p_b = logit_a.softmax(dim=1), logit_b.softmax(dim=1)
        p_le = ((p_a @ self.upper) * p_b).sum(dim=1).clamp(1e-7, 1 - 1e-7)
        pair = torch.stack([torch.log1p(-p_le), torch.log(p_le)], dim=1)
        return ModelOutput(pair, logit_a, logit_b)


@register_model(digit_heads=True)
def naive_prob(*, branch: Branch = "cnn", channels: tuple[int, ...] = (16, 32),
               hidden: tuple[int, ...] = (24,), shared: bool = False,
               activation: Activation = "leaky_relu", batchnorm: bool = False,
               dropout: float = 0.0) -> nn.Module:
    """Ours: report 002's naive model with a soft comparison, P(a ≤ b), that trains too.

    No comparison layer is learned, but the comparison loss reaches the classifiers
    through P(a ≤ b) computed from the two class distributions; ``shared=true`` makes
    it one classifier.
    """
    return NaiveNet(_branch_factory(branch, channels, hidden, activation, batchnorm, dropout),
                    shared)


# --------------------------------------------------------------------------------------------
# The siamese Elman RNN (ours as ``rnn_aux``; report 004's Siamese RNNs are ``r004_rnn``).


class SiameseRnn(nn.Module):
    """Each digit read as 14 rows by one shared Elman RNN; its last state → 10 digit logits;
    a head compares the two digits' logits.

    Args:
        hidden: The RNN's state size.
        layers: Stacked recurrent layers.
        make_head: Makes the comparison head, mapping the two digits' 20 values to 2 pair
            logits. It is called after the RNN and the digit layer are made, so a head
            whose weights must be drawn before them is made first and handed in as
            ``lambda: head``.
        softmax_first: Give the head each digit's softmax, not its logits (``probs_mlp``).
        zero_recurrent: Start the hidden-to-hidden weights at zero (report 004's
            ``hidden_init=weights``); the initial state is zero in any case.
    """

    def __init__(self, hidden: int, layers: int, make_head: Callable[[], nn.Module],
                 softmax_first: bool = False, zero_recurrent: bool = False) -> None:
        super().__init__()
        self.head_probs = softmax_first
        self.rnn = ElmanRNN(input_size=14, hidden_size=hidden, num_layers=layers)
        if zero_recurrent:
            for layer in self.rnn.layers:
                nn.init.zeros_(layer["hh"].weight)
        self.digit = nn.Linear(hidden, NUM_CLASSES)
        self.head = make_head()

    def forward(self, x: torch.Tensor) -> ModelOutput:
        batch = x.shape[0]
        rows = torch.cat([x[:, 0], x[:, 1]])  # (2B, 14 rows, 14 pixels), both digits at once
        logit_a, logit_b = self.digit(self.rnn(rows)).split(batch)  # zero initial state
        pair = self.head(_head_features(logit_a, logit_b, self.head_probs))
        return ModelOutput(pair, logit_a, logit_b)


@register_model(digit_heads=True)
def rnn_aux(*, hidden: int = 64, layers: int = 1, head_hidden: int = 64,
            head: Head = "probs_mlp", activation: Activation = "relu") -> nn.Module:
    """Ours: an Elman RNN siamese with digit heads and the probability head.

    Report 004's Siamese RNN 1 and 2 are ``r004_rnn``.
    """
    return SiameseRnn(hidden, layers,
                      lambda: make_head(head, 2 * NUM_CLASSES, head_hidden, activation),
                      softmax_first=head == "probs_mlp")
