"""Every registered model: shapes, finite outputs, gradients to every parameter, options."""

from __future__ import annotations

import pytest
import torch

from pairsearch.errors import PairsearchError
from pairsearch.evaluation.losses import LossRecipe
from pairsearch.models import count_parameters, create_model, list_models, model_entry

GENERIC = {"mlp", "cnn", "cnn_aux1", "twin", "twin_aux", "siamese", "siamese_aux", "naive",
           "naive_prob", "rnn_aux"}
# Each report's own networks, by the module that holds them (report 002's are generic).
REPORTS = {
    "report000": {"r000_cnn", "r000_cnn_aux1", "r000_cnn_aux1_digits", "r000_ws", "r000_aux2",
                  "r000_ws_aux"},
    "report001": {"r001_cnn", "r001_cnn_aux", "r001_siamese_aux"},
    "report003": {"r003_mlp", "r003_mlp_ws", "r003_mlp_ws_aux", "r003_cnn", "r003_cnn_ws",
                  "r003_cnn_ws_aux"},
    "report004": {"r004_linear", "r004_siamese_cnn", "r004_siamese_cnn3", "r004_rnn", "deep_aux"},
}
# Stored studies and the shipped TOML files name these: none may disappear.
EXPECTED = GENERIC.union(*REPORTS.values())


def test_registry_has_every_report_model():
    assert EXPECTED <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_each_network_lives_in_its_reports_module(name):
    module = model_entry(name).builder.__module__
    owner = [report for report, names in REPORTS.items() if name in names]
    if owner:
        assert module == f"pairsearch.models.reports.{owner[0]}"
        assert '"' in model_entry(name).builder.__doc__, "a report's network quotes the report"
    else:
        assert module == "pairsearch.models.generic", f"{name}: a new report network? list it"


def _check(model, name: str, batch: int = 8):
    """Output shapes and values, and a gradient from the training loss to every parameter."""
    entry = model_entry(name)
    x = torch.randn(batch, 2, 14, 14)
    out = model(x)
    assert out.pair.shape == (batch, 2)
    assert torch.isfinite(out.pair).all()
    if entry.digit_heads:
        assert out.digit_a.shape == (batch, 10) and out.digit_b.shape == (batch, 10)
        assert torch.isfinite(out.digit_a).all() and torch.isfinite(out.digit_b).all()
    else:
        assert out.digit_a is None and out.digit_b is None
    if entry.pair_aux:
        assert out.pair_aux.shape == (batch, 2) and torch.isfinite(out.pair_aux).all()
    else:
        assert out.pair_aux is None
    targets, classes = torch.randint(0, 2, (batch,)), torch.randint(0, 10, (batch, 2))
    loss = LossRecipe(comparison="ce" if entry.pair_loss else None)(out, targets, classes)
    loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"no gradient reaches {param_name}"
        assert torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0, f"zero gradient at {param_name}"
    with torch.no_grad():
        scored = model.eval()(x)
    assert all(t is None or torch.isfinite(t).all() for t in scored)


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name):
    torch.manual_seed(0)
    _check(create_model(name), name)
    assert model_entry(name).summary, "every model documents what it reproduces"
    assert "report" in (model_entry(name).builder.__doc__ or "").lower()


def _choice_values() -> list[tuple[str, str, object]]:
    """(model, option, value) for every other value of every choice and bool option.

    The activation, the same option of many models, takes one other value per model, in
    turn (every value is run by some model; test_activations_and_batchnorm runs them all).
    """
    cases = []
    turn = 0
    for name in list_models():
        for option in model_entry(name).options.values():
            values = option.choices if option.kind == "choice" else (
                (True, False) if option.kind == "bool" else ())
            others = [v for v in values if v != option.default]
            if option.name == "activation" and others:
                others = [others[turn % len(others)]]
                turn += 1
            cases += [(name, option.name, v) for v in others]
    return cases


@pytest.mark.parametrize("name, option, value", _choice_values())
def test_every_choice_keeps_the_contract(name, option, value):
    torch.manual_seed(0)
    _check(create_model(name, **{option: value}), name, batch=4)


@pytest.mark.parametrize("name", ["twin", "twin_aux", "siamese", "siamese_aux", "naive"])
def test_mlp_branch(name):
    torch.manual_seed(0)
    _check(create_model(name, branch="mlp", hidden="64,32"), name)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "selu"])
def test_activations_and_batchnorm(activation):
    torch.manual_seed(0)
    _check(create_model("siamese_aux", activation=activation, batchnorm="true", dropout="0.2"),
           "siamese_aux")
    _check(create_model("mlp", activation=activation, batchnorm=True), "mlp")


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
