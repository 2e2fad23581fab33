"""Every registered model: shapes, finite outputs, gradients to every parameter, options."""

from __future__ import annotations

import pytest
import torch

from pairsearch.errors import PairsearchError
from pairsearch.models import count_parameters, create_model, list_models, model_entry

EXPECTED = {"mlp", "cnn", "cnn_aux1", "twin", "twin_aux", "siamese", "siamese_aux", "naive",
            "naive_prob", "rnn_aux", "deep_aux"}


def test_registry_has_every_report_model():
    assert EXPECTED <= set(list_models())


def _check(model, digit_heads: bool):
    x = torch.randn(8, 2, 14, 14)
    out = model(x)
    assert out.pair.shape == (8, 2)
    assert torch.isfinite(out.pair).all()
    if digit_heads:
        assert out.digit_a.shape == (8, 10) and out.digit_b.shape == (8, 10)
        assert torch.isfinite(out.digit_a).all() and torch.isfinite(out.digit_b).all()
    else:
        assert out.digit_a is None and out.digit_b is None
    loss = out.pair.sum()
    for extra in (out.digit_a, out.digit_b, out.pair_aux):
        if extra is not None:
            loss = loss + extra.sum()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0, f"zero gradient at {name}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_contract(name):
    torch.manual_seed(0)
    model = create_model(name)
    _check(model, model_entry(name).digit_heads)
    assert model_entry(name).summary, "every model documents what it reproduces"
    assert "report" in (model_entry(name).builder.__doc__ or "").lower()


@pytest.mark.parametrize("name", ["twin", "twin_aux", "siamese", "siamese_aux", "naive"])
def test_mlp_branch(name):
    torch.manual_seed(0)
    _check(create_model(name, branch="mlp", hidden="64,32"), model_entry(name).digit_heads)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "selu"])
def test_activations_and_batchnorm(activation):
    torch.manual_seed(0)
    _check(create_model("siamese_aux", activation=activation, batchnorm="true", dropout="0.2"),
           True)
    _check(create_model("mlp", activation=activation, batchnorm=True), False)


def test_weight_sharing_halves_branch_parameters():
    shared = count_parameters(create_model("siamese"))
    unshared = count_parameters(create_model("twin"))
    branch = unshared - shared
    assert shared - branch == count_parameters(create_model("siamese").head)


def test_report_000_parameter_counts():
    # model_0 (392 → 128 → 64 → 2) and the siamese CNN of ../shared/notes.
    assert count_parameters(create_model("mlp")) == 58690
    assert count_parameters(create_model("siamese_aux")) == 31556


def test_naive_compares_the_predicted_classes_and_sends_no_gradient_back():
    """Report 002's naive model: "a simple comparison cannot send any gradient"."""
    torch.manual_seed(0)
    out = create_model("naive")(torch.randn(64, 2, 14, 14))
    le = out.digit_a.argmax(1) <= out.digit_b.argmax(1)
    assert torch.equal(out.pair.argmax(1), le.long())
    assert not out.pair.requires_grad and out.digit_a.requires_grad
    assert not model_entry("naive").pair_loss and model_entry("naive_prob").pair_loss


def test_naive_prob_pair_output_is_probability_of_le():
    torch.manual_seed(0)
    model = create_model("naive_prob")
    out = model(torch.randn(4, 2, 14, 14))
    p_a, p_b = out.digit_a.softmax(1), out.digit_b.softmax(1)
    expected = torch.stack([sum(p_a[k, i] * p_b[k, j] for i in range(10) for j in range(i, 10))
                            for k in range(4)])
    assert torch.allclose(out.pair.softmax(1)[:, 1], expected, atol=1e-5)


def test_cnn_aux1_has_intermediate_output():
    out = create_model("cnn_aux1")(torch.randn(3, 2, 14, 14))
    assert out.pair_aux is not None and out.pair_aux.shape == (3, 2)


@pytest.mark.parametrize("name, options, message", [
    ("resnet", {}, "unknown model 'resnet'; valid models: cnn"),
    ("mlp", {"branch": "cnn"}, "unknown option 'branch'"),
    ("siamese", {"activation": "gelu"}, "bad value 'gelu' for option 'activation'"),
    ("mlp", {"dropout": "1.5"}, "bad value '1.5' for option 'dropout'"),
    ("cnn", {"channels": "16,-1"}, "bad value '16,-1' for option 'channels'"),
    ("cnn_aux1", {"channels": "16,32"}, "needs at least 3"),
    ("siamese", {"batchnorm": "maybe"}, "bad value 'maybe' for option 'batchnorm'"),
])
def test_bad_model_options(name, options, message):
    with pytest.raises(PairsearchError, match=message):
        create_model(name, **options)


def test_every_summary_is_a_whole_sentence():
    # `pairsearch models` prints each summary alone: a sentence, not a quote cut mid-line.
    cut = [name for name in list_models() if not model_entry(name).summary.endswith((".", ")"))]
    assert not cut, cut
