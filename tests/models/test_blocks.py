"""Building blocks: each fast layer computes exactly what the layer it replaces does."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from pairsearch.models.blocks import ElmanRNN, MapLinear, PatchConv2d


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

