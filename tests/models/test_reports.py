"""The reports' own networks: their printed layers, and their parameter counts where the
report is consistent with itself."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pairsearch.evaluation.losses import LossRecipe
from pairsearch.errors import PairsearchError
from pairsearch.models import ModelOutput, count_parameters, create_model
from pairsearch.models.blocks import MapLinear
from pairsearch.models.reports.report003 import SigmoidPair


def _layers(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_report_000_counts_where_the_report_agrees_with_itself():
    # model_0: "MLP with two hidden layers", 58,690 parameters (table I): 392-128-64-2.
    assert count_parameters(create_model("mlp")) == 58690
    # "(20'820 vs 337'216 parameters)": model_1 with weight sharing and digit losses. Table I
    # prints 31,508 for the same network; its layers and the text give 20,820.
    assert count_parameters(create_model("r000_ws_aux", size="model_1")) == 20820


def test_report_000_layers_as_printed():
    model_1 = create_model("r000_cnn", size="model_1")
    convs = _layers(model_1, nn.Conv2d)
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (2, 16, (2, 2)), (16, 32, (2, 2))]
    assert [m.in_features for m in _layers(model_1, nn.Linear)] == [1152, 16]  # 32×6×6
    model_2 = create_model("r000_cnn", size="model_2")
    assert [c.out_channels for c in _layers(model_2, nn.Conv2d)] == [32, 64, 128]
    classifier = list(model_2.classifier)
    kinds = [type(m).__name__ for m in classifier]
    # Linear(3200, 64) → LeakyReLU → Linear(64, 12) → Dropout → Linear(12, 2): no activation
    # after Linear(64, 12), the dropout before the last layer.
    assert kinds == ["MapLinear", "LeakyReLU", "Linear", "Dropout", "Linear"]
    assert classifier[0].in_features == 3200 and classifier[-1].in_features == 12
    assert count_parameters(model_1) == 20706 and count_parameters(model_2) == 247110


def test_report_000_aux1_branches_after_the_second_convolution():
    model = create_model("r000_cnn_aux1")
    assert [c.out_channels for c in _layers(model.early, nn.Conv2d)] == [32, 64]
    assert model.aux_classifier[0].map_shape == (64, 6, 6)  # pooled 64×12×12
    out = model(torch.randn(3, 2, 14, 14))
    assert out.pair.shape == out.pair_aux.shape == (3, 2)


def test_report_000_ws_branch_out_sets_what_the_head_compares():
    literal = create_model("r000_ws", branch_out=2)  # the printed Linear(16, 2) per branch
    assert literal.branch_a[-1][-1].out_features == 2 and literal.head.in_features == 4
    assert create_model("r000_ws").head.in_features == 20
    with pytest.raises(ValueError, match="branch_out"):
        create_model("r000_ws", branch_out=0)


def test_report_000_aux1_linear_head_adds_one_linear_layer():
    # The table's reading: AUX1 - model_2 = 6,274 = one Linear(64·7·7, 2); here the map is 6×6.
    plain = count_parameters(create_model("r000_cnn", size="model_2"))
    linear = create_model("r000_cnn_aux1", aux_head="linear")
    assert count_parameters(linear) - plain == 64 * 6 * 6 * 2 + 2
    assert linear(torch.randn(3, 2, 14, 14)).pair_aux.shape == (3, 2)
    with pytest.raises(ValueError, match="aux_head"):
        create_model("r000_cnn_aux1", aux_head="mlp")


def test_report_000_ws_features_linear_has_table_one_count():
    # Table I: model_1 WS, 6,770 parameters = the shared Conv(1,16,2) and Conv(16,32,2)
    # (80 + 2,080) and one Linear(2·32·6·6, 2) (4,610) on the concatenated feature maps.
    model = create_model("r000_ws", size="model_1", head="features_linear")
    assert count_parameters(model) == 6770
    assert [m.in_features for m in _layers(model, nn.Linear)] == [2 * 32 * 6 * 6]
    assert [c.in_channels for c in _layers(model, nn.Conv2d)] == [1, 16]  # one digit each
    x = torch.randn(3, 2, 14, 14)
    out = model(x)
    assert out.pair.shape == (3, 2) and out.digit_a is None
    # Weight sharing: swapping the digits swaps the halves the linear layer reads.
    linear = _layers(model, nn.Linear)[0]
    half = linear.in_features // 2
    with torch.no_grad():
        linear.weight[:, half:] = linear.weight[:, :half]
    assert torch.allclose(model(x).pair, model(x.flip(1)).pair, atol=1e-5)


def test_report_000_aux1_digits_predicts_both_classes_from_the_second_convolution():
    model = create_model("r000_cnn_aux1_digits")
    plain = create_model("r000_cnn_aux1")
    out = model(torch.randn(3, 2, 14, 14))
    assert out.pair.shape == (3, 2) and out.pair_aux is None
    assert out.digit_a.shape == out.digit_b.shape == (3, 10)
    # The same network but for the auxiliary classifier's last layer: 20 outputs, not 2.
    assert model.aux_classifier[-1].out_features == 20
    assert count_parameters(model) - count_parameters(plain) == 18 * (16 + 1)
    # Trained by the digit losses: the loss reads the digit classes.
    targets = torch.tensor([1, 0, 1])
    first, second = torch.tensor([[1, 2], [5, 3], [0, 0]]), torch.tensor([[7, 8], [9, 1], [4, 4]])
    assert LossRecipe()(out, targets, first) != LossRecipe()(out, targets, second)


def test_report_003_budget_and_layout():
    # The chosen MLP [128, 64, 32, 256] on the flattened pair: 69,345 parameters, in budget.
    assert count_parameters(create_model("r003_mlp")) == 69345
    widths = [16, 32, 64, 128, 256, 512]
    mlps = sum(65000 <= count_parameters(create_model("r003_mlp", hidden=h)) <= 75000
               for h in itertools.product(widths, repeat=4))
    assert mlps == 47
    cnn = create_model("r003_cnn", channels=(16, 32, 256), hidden=(128,))
    assert [type(m).__name__ for m in cnn.features[0]] == [
        "PatchConv2d", "MaxPool2d", "ReLU", "Conv2d", "MaxPool2d", "ReLU", "Conv2d", "ReLU"]
    assert isinstance(cnn.classifier[-1], SigmoidPair)  # one sigmoid output


def test_one_sigmoid_output_trains_as_binary_cross_entropy():
    head = SigmoidPair(5)
    x, target = torch.randn(7, 5), torch.randint(0, 2, (7,))
    z = head.linear(x).squeeze(1)
    torch.testing.assert_close(F.cross_entropy(head(x), target),
                               F.binary_cross_entropy_with_logits(z, target.float()))


def test_report_003_loss_weighs_the_binary_term():
    out = ModelOutput(torch.randn(4, 2), torch.randn(4, 10), torch.randn(4, 10))
    targets, classes = torch.randint(0, 2, (4,)), torch.randint(0, 10, (4, 2))
    binary = F.cross_entropy(out.pair, targets)
    digits = F.cross_entropy(out.digit_a, classes[:, 0]) + F.cross_entropy(out.digit_b,
                                                                          classes[:, 1])
    theirs = LossRecipe("ce", "ce", 0.8, "comparison")(out, targets, classes)
    ours = LossRecipe("ce", "ce", 0.8)(out, targets, classes)
    torch.testing.assert_close(theirs, digits + 0.8 * binary)
    torch.testing.assert_close(ours, binary + 0.8 * digits)


def test_report_004_networks():
    cnn_2 = create_model("r004_siamese_cnn")
    assert [c.out_channels for c in _layers(cnn_2, nn.Conv2d)] == [16, 32, 64]
    assert not _layers(cnn_2, nn.MaxPool2d) and not _layers(cnn_2, nn.Dropout)
    assert isinstance(cnn_2.head, nn.Linear) and cnn_2.head.in_features == 20  # logits → 2
    assert count_parameters(create_model("r004_siamese_cnn", shared=False)) > \
        count_parameters(cnn_2)
    cnn_3 = create_model("r004_siamese_cnn3")
    assert _layers(cnn_3, nn.MaxPool2d) and _layers(cnn_3, nn.Dropout)
    assert _layers(cnn_3, MapLinear)[0].map_shape == (64, 3, 3)
    softmax = create_model("r004_siamese_cnn3", activation="softmax")
    assert len(_layers(softmax, nn.Softmax)) == 3 and not _layers(softmax, nn.ReLU)
    assert count_parameters(softmax) == count_parameters(cnn_3)
    digits = softmax.eval()(torch.randn(4, 2, 14, 14)).digit_a
    assert digits.shape == (4, 10) and torch.isfinite(digits).all()
    rnn_1, rnn_2 = create_model("r004_rnn"), create_model("r004_rnn", head="longer")
    assert isinstance(rnn_1.head, nn.Linear)
    assert [m.out_features for m in _layers(rnn_2.head, nn.Linear)] == [64, 32, 2]


def test_report004_rnn_three_layer_reading():
    one, three = create_model("r004_rnn"), create_model("r004_rnn", layers=3)
    assert len(three.rnn.layers) == 3 and len(one.rnn.layers) == 1
    # Each added layer: 64×64 input and recurrent weights and their two biases.
    assert count_parameters(three) - count_parameters(one) == 2 * (2 * 64 * 64 + 2 * 64)
    zero = create_model("r004_rnn", layers=3, hidden_init="weights")
    assert all(layer["hh"].weight.abs().sum() == 0 for layer in zero.rnn.layers)
    with pytest.raises(PairsearchError, match="layers"):
        create_model("r004_rnn", layers=0)


def test_report004_rnn_hidden_init_readings():
    torch.manual_seed(0)
    state = create_model("r004_rnn").rnn.layers[0]["hh"].weight
    weights = create_model("r004_rnn", hidden_init="weights").rnn.layers[0]["hh"].weight
    assert state.abs().sum() > 0 and weights.abs().sum() == 0
    # With zero recurrent weights the untrained network reads only each digit's last row.
    model = create_model("r004_rnn", hidden_init="weights").eval()
    x = torch.randn(3, 2, 14, 14)
    y = x.clone()
    y[:, :, :13] = torch.randn(3, 2, 13, 14)
    assert torch.allclose(model(x).digit_a, model(y).digit_a)


@pytest.mark.parametrize("name", ["r000_ws", "r000_aux2", "r000_ws_aux", "r001_cnn_aux",
                                  "r001_siamese_aux", "r004_siamese_cnn3"])
def test_last_layer_comparisons_read_the_digit_logits(name):
    model = create_model(name)
    assert isinstance(model.head, nn.Linear) and model.head.in_features == 20


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "leaky_relu"])
def test_report_001_act_linear_puts_the_activation_before_the_last_layer(activation):
    model = create_model("r001_siamese_aux", activation=activation, head="act_linear")
    act, linear = list(model.head)
    reference = create_model("r001_siamese_aux", activation=activation)
    assert type(act).__name__.lower().replace("_", "") == activation.replace("_", "")
    assert isinstance(linear, nn.Linear) and linear.in_features == 20
    assert count_parameters(model) == count_parameters(reference)


@pytest.mark.parametrize("channels, hidden", [("8,16", 64), ("16,32", 128), ("32,64", 256)])
def test_report_001_widths_set_the_convolutions_and_the_hidden_layer(channels, hidden):
    model = create_model("r001_siamese_aux", channels=channels, hidden=hidden)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, (nn.Linear, MapLinear))]
    first, second = (int(width) for width in channels.split(","))
    assert [conv.out_channels for conv in convs] == [first, second]
    # Shared branch: its hidden layer, its 10 digit outputs; then Linear(20, 2).
    assert [layer.out_features for layer in linears] == [hidden, 10, 2]
    # 14 → 12 → 6 → 4 → 2: each digit's map into the hidden layer is second × 2 × 2.
    expected = (1 * 9 * first + first + 2 * first + first * 9 * second + second + 2 * second
                + second * 4 * hidden + hidden + 2 * hidden + hidden * 10 + 10 + 20 * 2 + 2)
    assert count_parameters(model) == expected


def test_report_001_default_widths_are_the_documented_ones():
    default = create_model("r001_siamese_aux")
    explicit = create_model("r001_siamese_aux", channels="16,32", hidden=128)
    assert count_parameters(default) == count_parameters(explicit) == 22_996


def test_report_001_cnn_refuses_a_third_width():
    with pytest.raises(PairsearchError, match="channels.*exactly 2"):
        create_model("r001_cnn", channels="8,16,32")


@pytest.mark.parametrize("base", [2, 4, 8])
def test_deep_siamese_cnn_doubles_its_first_width_six_times(base):
    model = create_model("deep_aux", base_channels=base, head="logits_linear")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == [base * 2 ** i for i in range(6)]


def test_report_004_deep_readings():
    """The unpadded layout shrinks 14 → 2 without pooling; dropout "between the last three
    convolutional layers" sits after the 4th and 5th only."""
    padded = create_model("deep_aux", head="logits_linear", dropout=0.5)
    unpadded = create_model("deep_aux", head="logits_linear", dropout=0.5, layout="unpadded",
                            dropout_layers="between_last_three")
    assert len(_layers(padded, nn.MaxPool2d)) == 2 and not _layers(unpadded, nn.MaxPool2d)
    assert all(c.padding == (0, 0) for c in _layers(unpadded, nn.Conv2d))
    assert _layers(unpadded, MapLinear)[0].map_shape == (128, 2, 2)
    # the convolutions' parameters are the same; the last linear layer reads 4x the values
    assert count_parameters(unpadded) - count_parameters(padded) == 3 * 128 * 10
    assert len(_layers(padded, nn.Dropout)) == 3 and len(_layers(unpadded, nn.Dropout)) == 2
    sequence = [m for m in unpadded.branch_a.modules()
                if isinstance(m, (nn.Conv2d, nn.Dropout))]
    kinds = ["conv" if isinstance(m, nn.Conv2d) else "drop" for m in sequence]
    assert kinds == ["conv"] * 4 + ["drop", "conv", "drop", "conv"]
    assert unpadded.eval()(torch.randn(3, 2, 14, 14))[0].shape == (3, 2)


@pytest.mark.parametrize("weights, generic, options", [
    ("none", "mlp", {"hidden": "128"}),
    ("unshared", "twin", {"branch": "mlp", "hidden": "128", "head": "logits_linear"}),
    ("shared", "siamese", {"branch": "mlp", "hidden": "128", "head": "logits_linear"})])
def test_report_004_linear_networks(weights, generic, options):
    """"We used softmax as an activation function": r004_linear's softmax hidden layer; with
    ReLU it is the generic network of the models stage, weight for weight."""
    softmax = create_model("r004_linear", weights=weights)
    assert len(_layers(softmax, nn.Softmax)) in (1, 2) and not _layers(softmax, nn.ReLU)
    torch.manual_seed(0)
    relu = create_model("r004_linear", weights=weights, activation="relu")
    torch.manual_seed(0)
    same = create_model(generic, activation="relu", **options)
    assert count_parameters(relu) == count_parameters(same) == count_parameters(softmax)
    x = torch.randn(5, 2, 14, 14)
    torch.testing.assert_close(relu.eval()(x)[0], same.eval()(x)[0])
    assert count_parameters(create_model("r004_linear")) == 50562  # 392·128+128 + 128·2+2


def test_report_004_siamese_cnn_softmax_activation():
    softmax = create_model("r004_siamese_cnn", shared=False, activation="softmax")
    assert len(_layers(softmax, nn.Softmax)) == 6 and not _layers(softmax, nn.ReLU)


# Report 000's probability reading: "two dimensional output activated by softmax ... we see
# the outputs as probabilities" (section I.B), each branch running "the same layers".
PROBS_LINEAR_MODELS = [("r000_ws_aux", {"size": "model_1"}), ("r000_ws_aux", {"size": "model_2"}),
                       ("r000_aux2", {"size": "model_1"}), ("r000_aux2", {"size": "model_2"}),
                       ("r001_cnn_aux", {}), ("r001_siamese_aux", {}),
                       ("r004_siamese_cnn3", {}), ("siamese_aux", {}), ("twin_aux", {})]


@pytest.mark.parametrize("name, options", PROBS_LINEAR_MODELS)
def test_probs_linear_is_each_digits_softmax_then_one_linear_layer(name, options):
    model = create_model(name, head="probs_linear", **options).eval()
    softmax, linear = list(model.head)  # exactly two layers: no hidden layer
    assert type(softmax).__name__ == "DigitSoftmax" and count_parameters(softmax) == 0
    assert type(linear) is nn.Linear and (linear.in_features, linear.out_features) == (20, 2)
    x = torch.randn(5, 2, 14, 14)
    out = model(x)
    # The pair logits are that one layer applied to the two digits' probabilities.
    probs = torch.cat([out.digit_a.softmax(dim=1), out.digit_b.softmax(dim=1)], dim=1)
    torch.testing.assert_close(out.pair, linear(probs))
    assert torch.allclose(probs.reshape(5, 2, 10).sum(dim=2), torch.ones(5, 2))
    # The same network as the logits head but for the softmax: the same parameters.
    logits = create_model(name, head="logits_linear", **options)
    assert count_parameters(model) == count_parameters(logits)
    assert [n for n, _ in model.named_parameters() if not n.startswith("head.")] == [
        n for n, _ in logits.named_parameters() if not n.startswith("head.")]


def test_probs_linear_model_1_ws_aux_has_the_texts_20820_parameters():
    # "(20'820 vs 337'216 parameters)": model_1's layers on one channel ending in 10
    # outputs (the shared branch), then Linear(20, 2); the softmax adds nothing.
    model = create_model("r000_ws_aux", size="model_1", head="probs_linear")
    branch = count_parameters(model.branch_a)
    convs = (1 * 4 * 16 + 16) + (16 * 4 * 32 + 32)  # Conv(1,16,2), Conv(16,32,2)
    classifier = (32 * 6 * 6 * 16 + 16) + (16 * 10 + 10)  # Linear(1152, 16), Linear(16, 10)
    assert branch == convs + classifier
    assert count_parameters(model) == branch + (20 * 2 + 2) == 20_820
    assert model.branch_a is model.branch_b  # shared: counted once


def test_probs_linear_leaves_every_default_head_as_it_was():
    for name in ("r000_ws_aux", "r000_aux2", "r001_cnn_aux", "r001_siamese_aux",
                 "r004_siamese_cnn3"):
        assert type(create_model(name).head) is nn.Linear  # logits_linear, as stored studies
    assert [type(m).__name__ for m in create_model("siamese_aux").head] == [
        "Linear", "LeakyReLU", "Linear"]  # probs_mlp: its softmax before the head
