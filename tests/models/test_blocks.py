"""Building blocks: each fast layer computes exactly what the layer it replaces does; the one
convolution builder, and every model's convolutions in stacks that train in bf16."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from pairsearch.models import create_model, list_models
from pairsearch.models.blocks import (
    ConvStack,
    ElmanRNN,
    MapLinear,
    PatchConv2d,
    conv_layers,
    conv_stack,
    convolutions_in,
)


@pytest.mark.parametrize("in_channels, kernel, padding", [(1, 2, 0), (2, 2, 0), (1, 3, 1)])
def test_patch_convolution_is_a_convolution(in_channels, kernel, padding):
    layer = PatchConv2d(in_channels, 8, kernel, padding=padding)
    x = torch.randn(5, in_channels, 14, 14, requires_grad=True)
    out = layer(x)
    expected = F.conv2d(x, layer.weight, layer.bias, padding=padding)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)
    grad = torch.autograd.grad(out.square().sum(), [x, layer.weight, layer.bias])
    grad_expected = torch.autograd.grad(expected.square().sum(), [x, layer.weight, layer.bias])
    for ours, theirs in zip(grad, grad_expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_map_linear_is_flatten_then_linear(layout):
    layer = MapLinear((8, 3, 4), 5)
    x = torch.randn(6, 8, 3, 4).to(memory_format=layout).requires_grad_()
    out = layer(x)
    expected = F.linear(x.flatten(1), layer.weight, layer.bias)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.autograd.grad(out.square().sum(), [x, layer.weight, layer.bias])
    grad_expected = torch.autograd.grad(expected.square().sum(), [x, layer.weight, layer.bias])
    for ours, theirs in zip(grad, grad_expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    # Under vmap (the GPU engine) the layer must run too, with the same result.
    stacked = torch.stack([x.detach(), 2 * x.detach()]).to(memory_format=torch.contiguous_format)
    mapped = vmap(layer)(stacked)
    torch.testing.assert_close(mapped[1], layer(2 * x.detach()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
def test_elman_rnn_is_torchs_rnn(layers):
    ours = ElmanRNN(14, 32, layers)
    reference = nn.RNN(14, 32, layers, nonlinearity="tanh", batch_first=True)
    with torch.no_grad():
        for k, layer in enumerate(ours.layers):
            getattr(reference, f"weight_ih_l{k}").copy_(layer["ih"].weight)
            getattr(reference, f"bias_ih_l{k}").copy_(layer["ih"].bias)
            getattr(reference, f"weight_hh_l{k}").copy_(layer["hh"].weight)
            getattr(reference, f"bias_hh_l{k}").copy_(layer["hh"].bias)
    x = torch.randn(7, 14, 14)
    torch.testing.assert_close(ours(x), reference(x)[1][-1], rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in ours.parameters()) == \
        sum(p.numel() for p in reference.parameters())


def test_pooling_before_the_activation_is_exact():
    """conv_stack pools before activating: equal for every (non-decreasing) activation."""
    x = torch.randn(4, 8, 12, 12)
    for act in (nn.ReLU(), nn.LeakyReLU(), nn.Tanh(), nn.Sigmoid(), nn.SELU()):
        torch.testing.assert_close(F.max_pool2d(act(x), 2), act(F.max_pool2d(x, 2)))



def _kinds(layers) -> list[str]:
    return [type(layer).__name__ for layer in layers]


def test_conv_layers_order_pools_before_the_activation_by_default():
    layers = conv_layers(2, (8, 16, 32), "relu", batchnorm=True, pool_at=(1,))
    assert _kinds(layers) == ["PatchConv2d", "BatchNorm2d", "ReLU",
                              "Conv2d", "BatchNorm2d", "MaxPool2d", "ReLU",
                              "Conv2d", "BatchNorm2d", "ReLU"]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in layers
            if isinstance(c, nn.Conv2d)] == [(2, 8, (2, 2), (0, 0)), (8, 16, (2, 2), (0, 0)),
                                             (16, 32, (2, 2), (0, 0))]


def test_conv_layers_after_the_activation_with_dropout_and_chosen_batchnorms():
    layers = conv_layers(1, (4, 8, 16), nn.Tanh, kernel_size=3, padding=1, batchnorm=(1,),
                         pool_at=(0, 2), pool_after_activation=True, dropout=0.3,
                         dropout_at=(1, 2), patch_first=False)
    assert _kinds(layers) == ["Conv2d", "Tanh", "MaxPool2d",
                              "Conv2d", "BatchNorm2d", "Tanh", "Dropout",
                              "Conv2d", "Tanh", "Dropout", "MaxPool2d"]
    assert layers[0].kernel_size == (3, 3) and layers[0].padding == (1, 1)
    assert not _kinds(conv_layers(1, (4, 8), "relu", dropout=0.0, dropout_at=(0, 1))).count(
        "Dropout")


def test_conv_stack_pools_after_the_second_convolution_or_the_only_one():
    assert _kinds(conv_stack(1, (16, 32), "leaky_relu")) == [
        "PatchConv2d", "LeakyReLU", "Conv2d", "MaxPool2d", "LeakyReLU"]
    assert _kinds(conv_stack(1, (16,), "leaky_relu")) == ["PatchConv2d", "MaxPool2d",
                                                          "LeakyReLU"]


def _built(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name)


CONVOLUTIONAL = [name for name in list_models()
                 if any(isinstance(m, nn.Conv2d) for m in _built(name).modules())]


@pytest.mark.parametrize("name", list_models())
def test_every_convolution_sits_in_a_conv_stack(name):
    """So that --precision bf16 covers every convolution of every model."""
    model = _built(name)
    in_stacks = {id(m) for stack in model.modules() if isinstance(stack, ConvStack)
                 for m in stack.modules()}
    outside = [n for n, m in model.named_modules()
               if isinstance(m, nn.Conv2d) and id(m) not in in_stacks]
    assert not outside, f"convolutions outside a ConvStack: {outside}"


@pytest.mark.parametrize("name", CONVOLUTIONAL)
def test_every_convolutional_model_runs_in_bf16(name):
    model = _built(name)
    seen: list[torch.dtype] = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with convolutions_in(torch.bfloat16):
        output = model(torch.rand(4, 2, 14, 14))
    assert seen and set(seen) == {torch.bfloat16}  # every convolution ran in bf16
    assert output.pair.dtype == torch.float32 and torch.isfinite(output.pair).all()
    sum(t.sum() for t in output if t is not None and t.requires_grad).backward()


def test_both_rnn_models_are_one_network():
    """rnn_aux (ours) and report 004's r004_rnn are the same class with different heads."""
    ours, theirs = create_model("rnn_aux"), create_model("r004_rnn")
    assert type(ours) is type(theirs)
    assert [n for n, _ in ours.named_parameters() if not n.startswith("head.")] == [
        n for n, _ in theirs.named_parameters() if not n.startswith("head.")]
