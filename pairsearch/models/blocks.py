"""Building blocks shared by every network: activations, MLPs, convolution stacks, branches,
the Elman RNN."""

from __future__ import annotations

import contextlib
import functools
import contextvars
from typing import Callable, Container, Iterator, Literal, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid", "selu"]
Branch = Literal["cnn", "mlp"]
Head = Literal["probs_mlp", "logits_mlp", "logits_linear", "probs_linear"]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "selu": nn.SELU,
}

DIGIT_PIXELS = 14 * 14
NUM_CLASSES = 10


class ModelOutput(NamedTuple):
    """What every model returns.

    The first three fields are the triple every model shares: pair logits
    ``(B, 2)`` (index 1 means "a ≤ b") and the digit logits ``(B, 10)`` of the
    first and second digit, ``None`` for models without digit heads.
    ``pair_aux`` is the intermediate pair output of ``cnn_aux1`` and ``r000_cnn_aux1``
    (report 000's AUX1), ``None`` for every other model.
    """

    pair: torch.Tensor
    digit_a: Optional[torch.Tensor] = None
    digit_b: Optional[torch.Tensor] = None
    pair_aux: Optional[torch.Tensor] = None


@contextlib.contextmanager
def _bound(variable: contextvars.ContextVar, value: object) -> Iterator[None]:
    """``variable`` set to ``value`` inside the block, its previous value restored after."""
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)


_DROPOUT_STREAM: contextvars.ContextVar[Optional[torch.Generator]] = contextvars.ContextVar(
    "pairsearch_dropout_stream", default=None)


@contextlib.contextmanager
def random_stream(generator: Optional[torch.Generator]) -> Iterator[None]:
    """Make ``Dropout`` layers draw their masks from ``generator`` (in this thread only).

    Each training run owns a generator, so its dropout masks do not depend on
    which other runs share the process or the thread they run in: trained alone
    or in an ensemble, in any order, a run draws the same masks.
    """
    with _bound(_DROPOUT_STREAM, generator):
        yield


class Dropout(nn.Dropout):
    """``nn.Dropout`` that draws from the run's ``random_stream`` when one is set."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        generator = _DROPOUT_STREAM.get()
        if not self.training or self.p == 0 or generator is None:
            return super().forward(x)
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=generator)
        return x * keep / (1 - self.p)


_CONV_DTYPE: contextvars.ContextVar[Optional[torch.dtype]] = contextvars.ContextVar(
    "pairsearch_conv_dtype", default=None)


@contextlib.contextmanager
def convolutions_in(dtype: Optional[torch.dtype]) -> Iterator[None]:
    """Make ``ConvStack`` layers train in ``dtype`` autocast (``None``: float32) in this thread.

    Mixed precision in the usual sense: weights, optimizer state and everything after
    the convolution stacks stay float32; only the stacks' arithmetic, while training,
    runs in ``dtype``. Scoring (eval mode) is always float32.
    """
    with _bound(_CONV_DTYPE, dtype):
        yield


class ConvStack(nn.Sequential):
    """``nn.Sequential`` of convolution layers that trains in the ``convolutions_in`` dtype.

    With bfloat16 on a CPU with bf16 instructions (AVX512-BF16, AMX) the convolutions run
    on oneDNN's bf16 kernels, and pooling and activations on half-size tensors. Measured
    on 2 AMD EPYC cores with AVX512-BF16 (siamese_aux, 5-fold evaluation): 12-20% less
    time per fold-training, the same mean accuracy (docs/benchmarks.md).

    Args:
        *layers: The layers, in order.
        float_output: Hand the layers after the stack a float32 map (the default). With
            ``False`` the map stays in the training dtype, for a reader that takes it as it
            is: ``MapLinear`` then runs its product in that dtype too and returns float32,
            which saves casting the map (and its gradient) to float32 and back.
    """

    def __init__(self, *layers: nn.Module, float_output: bool = True) -> None:
        super().__init__(*layers)
        self.float_output = float_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _CONV_DTYPE.get()
        if dtype is None or dtype == torch.float32 or not self.training:
            return super().forward(x)
        with torch.autocast(x.device.type, dtype=dtype):
            out = super().forward(x)
        return out.float() if self.float_output else out


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name."""
    return _ACTIVATIONS[name]()


def activation_maker(act: str | Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """A function making fresh activations: ``act`` by name (``make_activation``), or
    ``act`` itself when it already is one (a report's own activation)."""
    return functools.partial(make_activation, act) if isinstance(act, str) else act


class MapLinear(nn.Linear):
    """``nn.Flatten()`` then ``nn.Linear`` for a (C, H, W) feature map, without the flatten's copy.

    Same parameters, initialisation and function as ``nn.Linear(C·H·W, out)`` on the
    map flattened in (C, H, W) order. A channels-last map (what ``conv_stack`` makes,
    see ``PatchConv2d``) would need a copy to be flattened in that order, and the
    backward pass would then hand the layers below a gradient in the other layout, which
    slows their kernels; here the map is read in its memory order and the weight's
    columns are permuted to match (in siamese_aux a copy of 27,648 weights instead of the
    map's 230,400 values for 200 digits). Measured on 2 CPU cores: a training step 4%
    faster (medians of 12 alternated rounds, 3 runs), a 5-fold evaluation 6% (median of
    5 alternated processes); same accuracies. A bf16 map (from a ``ConvStack`` with
    ``float_output=False`` training in bf16) is multiplied in bf16; the result is float32.

    Args:
        map_shape: (C, H, W) of the input map.
        out_features: Output width.
    """

    def __init__(self, map_shape: Sequence[int], out_features: int) -> None:
        channels, height, width = map_shape
        super().__init__(channels * height * width, out_features)
        self.map_shape = (channels, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → (N, out_features), float32 whatever the map's dtype."""
        weight, bias = self.weight, self.bias
        if x.dtype != weight.dtype:
            # A bf16 map from a ConvStack training in bf16: the product in bf16 too (its
            # input gradient, a (N × out)(out × C·H·W) product, runs 3x faster on a CPU
            # with bf16 instructions); the casts pass float32 gradients to the weights.
            weight = weight.to(x.dtype)
            bias = None if bias is None else bias.to(x.dtype)
        channels_last = x.permute(0, 2, 3, 1)
        # is_contiguous() without a memory format is the only layout query vmap allows.
        if x.is_contiguous() or not channels_last.is_contiguous():
            out = F.linear(x.flatten(1), weight, bias)
        else:
            weight = weight.unflatten(1, self.map_shape).permute(0, 2, 3, 1).flatten(1)
            out = F.linear(channels_last.flatten(1), weight, bias)
        return out.to(self.weight.dtype)


def mlp(in_features: int | Sequence[int], hidden: Sequence[int], out_features: int,
        act: str | Callable[[], nn.Module], batchnorm: bool = False,
        dropout: float = 0.0) -> nn.Sequential:
    """Linear layers with ``hidden`` widths; each hidden layer is Linear → [BN] → act → [Dropout].

    ``in_features`` is a width, or the (C, H, W) shape of a feature map, which the
    first layer then flattens (``MapLinear``). ``act`` is an activation's name
    (``make_activation``) or a function making a fresh one (a report's own activation).
    """
    make_act = activation_maker(act)
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers.append(_linear(width, size))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(make_act())
        if dropout > 0:
            layers.append(Dropout(dropout))
        width = size
    layers.append(_linear(width, out_features))
    return nn.Sequential(*layers)


def _linear(in_features: int | Sequence[int], out_features: int) -> nn.Linear:
    if isinstance(in_features, int):
        return nn.Linear(in_features, out_features)
    return MapLinear(in_features, out_features)


class PatchConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same function) computed as patches × weight matrix.

    Meant for a network's first convolution, whose input has 1 or 2 channels. With so
    few input channels the CPU convolution kernels run far below the machine's speed
    and, worse, leave the output in NCHW layout, which makes every later convolution
    and pooling 2-3x slower. Here the k×k patches are gathered by slicing (no
    ``unfold`` copy of the whole input), multiplied by the weight in one matrix
    product, and the result is a channels-last tensor, so the rest of the stack runs
    on the fast channels-last kernels. Measured on 2 CPU cores (siamese_aux, batch of
    200 digits, forward + backward of the convolution stack): 12.3 ms with
    ``nn.Conv2d``, 7.0 ms with this layer.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.groups != 1 or self.stride != (1, 1) or self.dilation != (1, 1)
                or self.padding_mode != "zeros" or isinstance(self.padding, str)):
            return super().forward(x)
        pad_h, pad_w = self.padding
        if pad_h or pad_w:
            x = F.pad(x, (pad_w, pad_w, pad_h, pad_h))
        k_h, k_w = self.kernel_size
        out_h, out_w = x.shape[-2] - k_h + 1, x.shape[-1] - k_w + 1
        # (..., H', W', C·kh·kw), ordered like the weight's (C, kh, kw) flattening.
        patches = torch.stack([x[..., dy:dy + out_h, dx:dx + out_w]
                               for dy in range(k_h) for dx in range(k_w)], dim=-1)
        patches = patches.movedim(-4, -2).flatten(-2)
        rows = patches.reshape(-1, patches.shape[-1])
        # A contiguous (C·kh·kw, C_out) weight, not F.linear's transposed view: autograd then
        # computes the weight gradient as patchesᵀ · grad, (4 × N)(N × 16), which runs 4x
        # faster on a CPU than the (16 × N)(N × 4) product it picks for a transposed view
        # (a training step of siamese_aux: 7% faster).
        weight = self.weight.flatten(1).t().contiguous()
        out = rows @ weight if self.bias is None else torch.addmm(self.bias, rows, weight)
        out = out.view(*patches.shape[:-1], -1)  # (..., H', W', C_out)
        return out.movedim(-1, -3)  # a channels-last view: no copy


def conv_layers(in_channels: int, channels: Sequence[int],
                act: str | Callable[[], nn.Module], *, kernel_size: int = 2, padding: int = 0,
                batchnorm: bool | Container[int] = False, pool_at: Container[int] = (),
                pool_after_activation: bool = False, dropout: float = 0.0,
                dropout_at: Container[int] = (), patch_first: bool = True) -> list[nn.Module]:
    """The one builder of convolution layers: one convolution per width in ``channels``.

    Layer ``i`` is Conv → [BatchNorm] → [MaxPool(2)] → activation → [Dropout], or with
    ``pool_after_activation`` Conv → [BatchNorm] → activation → [Dropout] → [MaxPool(2)].
    Pooling before the activation is the default: every activation ``make_activation``
    offers is elementwise and non-decreasing, so max-pool(act(x)) = act(max-pool(x))
    exactly, and the activation then runs on a quarter of the values. (Report 004's
    softmax over the channels is neither; its CNN 3 pools before it all the same.)

    Args:
        in_channels: Channels of the input.
        channels: Each convolution's output width, in order.
        act: An activation's name (``make_activation``) or a function making a fresh one.
        kernel_size: Every convolution's kernel size.
        padding: Every convolution's zero padding.
        batchnorm: ``True`` for a BatchNorm after every convolution, or the indices of the
            convolutions that have one.
        pool_at: Indices of the convolutions followed by a 2×2 max-pool.
        pool_after_activation: Pool after the activation (and the dropout) instead of before.
        dropout: Dropout rate of the layers in ``dropout_at`` (none when 0).
        dropout_at: Indices of the convolutions followed by dropout.
        patch_first: Make the first convolution a ``PatchConv2d`` (a network's first
            convolution, on 1 or 2 channels); ``False`` for a stack that continues another.

    Returns:
        The layers, for a ``ConvStack`` (or for the caller to extend first).
    """
    make_act = activation_maker(act)
    layers: list[nn.Module] = []
    width = in_channels
    for index, size in enumerate(channels):
        conv = PatchConv2d if index == 0 and patch_first else nn.Conv2d
        layers.append(conv(width, size, kernel_size=kernel_size, padding=padding))
        if batchnorm is True or (batchnorm is not False and index in batchnorm):
            layers.append(nn.BatchNorm2d(size))
        pool = index in pool_at
        if pool and not pool_after_activation:
            layers.append(nn.MaxPool2d(2))
        layers.append(make_act())
        if dropout > 0 and index in dropout_at:
            layers.append(Dropout(dropout))
        if pool and pool_after_activation:
            layers.append(nn.MaxPool2d(2))
        width = size
    return layers


def conv_stack(in_channels: int, channels: Sequence[int], act: str,
               batchnorm: bool = False) -> ConvStack:
    """Report 000's convolution stack: 2×2 convolutions, a 2×2 max-pool after the second one.

    ``(16, 32)`` gives model_1's features (14→13→12→6, a 32×6×6 map = 1152 values),
    ``(32, 64, 128)`` model_2's (…→6→5, 128×5×5 = 3200 values); a single convolution is
    pooled too. The stack ends with the feature map, for an ``mlp`` given its shape to read
    (``MapLinear``), which takes it in the stack's training dtype (``float_output=False``).
    The pool comes before the activation (see ``conv_layers``).
    """
    pool_at = (0,) if len(channels) == 1 else (1,)
    return ConvStack(*conv_layers(in_channels, channels, act, batchnorm=batchnorm,
                                  pool_at=pool_at), float_output=False)


def output_shape(module: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of what ``module`` produces for one input of ``input_shape`` (batch axis left out)."""
    with torch.no_grad():
        was_training = module.training
        module.eval()
        shape = module(torch.zeros(1, *input_shape)).shape[1:]
        module.train(was_training)
    return tuple(shape)


def cnn_branch(channels: Sequence[int], hidden: int, act: str, batchnorm: bool,
               dropout: float, out_features: int = NUM_CLASSES) -> nn.Sequential:
    """One digit (1×14×14) → ``out_features``: conv stack then one hidden layer.

    With the defaults (16, 32) and hidden 24 this is the branch of report 000's
    model_1 WS+AUX (and of ../shared/notes: 30,082 parameters).
    """
    features = conv_stack(1, channels, act, batchnorm)
    return nn.Sequential(features, mlp(output_shape(features, (1, 14, 14)), [hidden],
                                       out_features, act, batchnorm, dropout))


def mlp_branch(hidden: Sequence[int], act: str, batchnorm: bool, dropout: float,
               out_features: int = NUM_CLASSES) -> nn.Sequential:
    """One digit (1×14×14) → ``out_features`` with fully connected layers (reports 003, 004)."""
    return nn.Sequential(nn.Flatten(), mlp(DIGIT_PIXELS, hidden, out_features, act, batchnorm,
                                           dropout))


class ElmanRNN(nn.Module):
    """``nn.RNN(nonlinearity="tanh", batch_first=True)`` written out step by step.

    Same parameters (per layer ``ih`` and ``hh``: weights and biases of
    ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``), same
    initialisation U(−1/√hidden, 1/√hidden) and same function; written in plain
    tensor operations so that ``torch.func.vmap`` can batch several models of it (it
    has no batching rule for the fused RNN kernel). The initial state is zero.

    Args:
        input_size: Features per time step.
        hidden_size: State size.
        num_layers: Stacked layers.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleDict({"ih": nn.Linear(input_size if k == 0 else hidden_size, hidden_size),
                           "hh": nn.Linear(hidden_size, hidden_size)})
            for k in range(num_layers))
        bound = hidden_size ** -0.5
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., T, input_size) → the last layer's state after the last step (..., hidden)."""
        for layer in self.layers:
            driven = layer["ih"](x)  # every step's input term in one product
            state = torch.tanh(driven[..., 0, :] + layer["hh"].bias)  # h_0 = 0
            states = [state]
            for step in range(1, driven.shape[-2]):
                state = torch.tanh(driven[..., step, :] + layer["hh"](state))
                states.append(state)
            x = torch.stack(states, dim=-2)
        return x[..., -1, :]


class DigitSoftmax(nn.Module):
    """The softmax of each digit's outputs: a (B, 2·k) input read as two halves of k values.

    What a comparison head that reads probabilities puts first: each half (one digit's
    outputs) becomes a distribution of its own. No parameters.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax over each half of the last dimension, the halves concatenated again."""
        return torch.cat([half.softmax(dim=1) for half in x.chunk(2, dim=1)], dim=1)


def split_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2, 14, 14) → two (B, 1, 14, 14) digit batches."""
    return x[:, 0:1], x[:, 1:2]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (a shared branch is counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
