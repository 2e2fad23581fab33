"""Precision of training: bf16 convolution stacks where the CPU has bf16 instructions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pairsearch.errors import PairsearchError
from pairsearch.evaluation import Config, Protocol, evaluate, resolve_precision
from pairsearch.evaluation import precision as precision_module
from pairsearch.models import create_model
from pairsearch.models.blocks import (ConvStack, MapLinear, conv_stack, convolutions_in,
                                      output_shape)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("has_bf16, device, expected", [
    (True, CPU, "bf16"), (False, CPU, "fp32"), (True, CUDA, "fp32")])
def test_auto_is_bf16_only_on_a_cpu_with_bf16_instructions(monkeypatch, has_bf16, device,
                                                           expected):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: has_bf16)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    assert resolve_precision("auto", device) == expected
    assert resolve_precision("fp32", device) == "fp32"
    assert resolve_precision("bf16", device) == "bf16"


def test_auto_is_fp32_without_onednn(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"


def test_unknown_precision_lists_the_valid_ones():
    with pytest.raises(PairsearchError, match="bad value 'fp8' for precision: valid: auto, fp32, bf16"):
        resolve_precision("fp8", CPU)


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="needs Linux's /proc/cpuinfo")
def test_cpu_feature_query_agrees_with_the_kernel():
    flags = Path("/proc/cpuinfo").read_text().split()
    expected = "avx512_bf16" in flags or "amx_bf16" in flags
    assert precision_module.cpu_has_bf16() is expected


def stack_and_input() -> tuple[ConvStack, torch.Tensor]:
    torch.manual_seed(0)
    stack = conv_stack(1, (16, 32), "leaky_relu")
    return stack, torch.randn(20, 1, 14, 14)


def conv_dtypes(stack: torch.nn.Module) -> list[torch.dtype]:
    seen: list[torch.dtype] = []
    for layer in stack:
        if isinstance(layer, torch.nn.Conv2d):
            layer.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def test_a_stack_trains_in_bf16_and_hands_on_float32():
    stack, x = stack_and_input()
    stack = ConvStack(*stack)  # float_output=True, the default
    reference = stack(x)
    seen = conv_dtypes(stack)
    with convolutions_in(torch.bfloat16):
        out = stack(x)
    assert seen == [torch.bfloat16, torch.bfloat16]
    assert out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)  # MapLinear's fast path
    assert not torch.equal(out, reference)
    torch.testing.assert_close(out, reference, rtol=0.05, atol=0.05)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in stack.parameters())


def test_conv_stack_hands_its_bf16_map_to_maplinear():
    stack, x = stack_and_input()
    reader = MapLinear(output_shape(stack, (1, 14, 14)), 24)
    model = torch.nn.Sequential(stack, reader)
    reference = model(x)
    with convolutions_in(torch.bfloat16):
        feature_map = stack(x)
        out = model(x)
    assert feature_map.dtype == torch.bfloat16  # no float32 copy of the map
    assert feature_map.is_contiguous(memory_format=torch.channels_last)
    assert out.dtype == torch.float32
    assert not torch.equal(out, reference)
    torch.testing.assert_close(out, reference, rtol=0.05, atol=0.05)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32
               for p in model.parameters())
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).square().sum().backward()  # float32 gradients, for comparison
    for bf16, fp32 in zip(grads, (p.grad for p in model.parameters())):
        assert torch.nn.functional.cosine_similarity(bf16.flatten(), fp32.flatten(), 0) > 0.99


def test_float32_outside_the_context_and_when_scoring():
    stack, x = stack_and_input()
    reference = stack(x)
    seen = conv_dtypes(stack)
    stack.eval()
    with convolutions_in(torch.bfloat16):
        scored = stack(x)
    stack.train()
    after = stack(x)
    assert seen == [torch.float32] * 4
    assert torch.equal(scored, reference) and torch.equal(after, reference)


def test_every_convolutional_model_runs_in_bf16():
    for name in ("cnn", "siamese_aux", "twin", "naive_prob", "cnn_aux1", "deep_aux"):
        torch.manual_seed(0)
        model = create_model(name)
        x = torch.rand(8, 2, 14, 14)
        stacks = [m for m in model.modules() if isinstance(m, ConvStack)]
        in_stacks = {id(m) for stack in stacks for m in stack.modules()}
        assert all(id(m) in in_stacks for m in model.modules()
                   if isinstance(m, torch.nn.Conv2d)), f"{name}: a convolution outside a stack"
        records = [conv_dtypes(stack) for stack in stacks]
        with convolutions_in(torch.bfloat16):
            output = model(x)
        seen = {dtype for record in records for dtype in record}
        assert stacks and seen == {torch.bfloat16}, name  # every convolution ran in bf16
        assert output.pair.dtype == torch.float32 and torch.isfinite(output.pair).all(), name
        output.pair.sum().backward()


def test_evaluation_records_its_precision(small_pairs):
    config = Config.from_settings("siamese_aux", {"epochs": "1"})
    for name in ("fp32", "bf16"):
        result = evaluate(config, small_pairs, Protocol("cv", folds=2), precision=name)
        assert result.precision == name and result.to_dict()["precision"] == name
    with pytest.raises(PairsearchError, match="for precision"):
        evaluate(config, small_pairs, Protocol("cv", folds=2), precision="half")


def in_bf16(pairs, engine: str):
    config = Config.from_settings("siamese_aux", {"epochs": "2"})
    return evaluate(config, pairs, Protocol("cv", folds=2), engine=engine, precision="bf16")


def test_ensemble_is_still_the_runs_one_by_one_in_bf16(small_pairs):
    loop, alone = in_bf16(small_pairs, "loop"), in_bf16(small_pairs, "sequential")
    assert loop.accuracies == alone.accuracies
    assert [r.final_loss for r in loop.runs] == pytest.approx(
        [r.final_loss for r in alone.runs], rel=1e-4)


def test_vmap_engine_runs_in_bf16(small_pairs):
    vmap, loop = in_bf16(small_pairs, "vmap"), in_bf16(small_pairs, "loop")
    assert vmap.failed is None
    assert [r.final_loss for r in vmap.runs] == pytest.approx(
        [r.final_loss for r in loop.runs], rel=0.02)
