"""Every row of docs/bad_inputs.md: one line, exit code 2, the database unchanged.

The rows run in-process through ``pairsearch.cli.main`` (a subprocess per row would
spend most of the time importing torch); tests/test_cli.py runs bad inputs through
real subprocesses.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from pairsearch.cli import main

pytestmark = pytest.mark.process  # pairsearch runs in subprocesses here

TABLE = Path(__file__).resolve().parents[2] / "docs" / "bad_inputs.md"
ROW = re.compile(r"^\| (\d+) \| [^|]+ \| `([^`]+)` \| `([^`]+)` \|$")


def rows() -> list[tuple[str, str, str]]:
    found = [ROW.match(line) for line in TABLE.read_text().splitlines()]
    return [(m.group(1), m.group(2), m.group(3)) for m in found if m]


def test_table_has_at_least_20_rows():
    assert len(rows()) >= 20


def run(command: str, cwd: Path, capsys) -> tuple[int, str]:
    args = shlex.split(command)
    assert args[0] == "pairsearch"
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(args[1:])
    finally:
        os.chdir(previous)
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    here = tmp_path_factory.mktemp("bad")
    (here / "tiny.toml").write_text('[params]\nmodel = ["mlp", "siamese"]\nlr = [0.001, 0.01]\n')
    (here / "other.toml").write_text('[params]\nmodel = ["mlp"]\nlr = [0.1]\n')
    (here / "bad.toml").write_text("[params\nmodel = \n")
    (here / "empty.toml").write_text("")
    (here / "vgg.toml").write_text('[params]\nmodel = ["vgg"]\n')
    (here / "fast.toml").write_text('[params]\nmodel = ["mlp"]\nlr = [0.1, "fast"]\n')
    (here / "budget.toml").write_text('[params]\nmodel = ["mlp"]\n[budget]\nparams = [5, 1]\n')
    (here / "budgeted.toml").write_text('[params]\nmodel = ["mlp"]\nhidden = ["16", "32"]\n'
                                        '[budget]\nparams = [0, 100000]\n')
    (here / "variant.toml").write_text('[variants.x]\nmodel = "mlp"\ncolour = "red"\n')
    (here / "mine.toml").write_text('[settings]\nmodel = "mlp"\nhead = "probs_mlp"\n')
    (here / "families.toml").write_text('[params]\nlr = [0.001]\n[families.a]\nmodel = "mlp"\n'
                                        'head = ["probs_mlp", "logits_linear"]\n')
    corrupt = here / "corrupt"
    corrupt.mkdir()
    (corrupt / "t10k-images-idx3-ubyte").write_bytes(b"\x00garbage" * 10)
    (corrupt / "t10k-labels-idx1-ubyte").write_bytes(b"\x00garbage" * 10)
    made = subprocess.run([sys.executable, "-m", "pairsearch", "grid", "--space", "tiny.toml",
                           "--epochs", "1", "--folds", "2", "--train-pairs", "100",
                           "--no-progress"], cwd=here, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    shutil.copy(here / "studies.db", here / "ro.db")
    # A table of that grid (without learning curves), for the --table rows.
    assert main(["export", "--storage", f"sqlite:///{here / 'studies.db'}", "--study",
                 "tiny-grid", "--out", str(here / "tiny.json")]) == 0
    return here


def snapshot(folder: Path) -> tuple[bytes, list]:
    study = optuna.load_study(study_name="tiny-grid", storage=f"sqlite:///{folder / 'studies.db'}")
    return ((folder / "studies.db").read_bytes(),
            [(t.number, t.state, t.value, t.params) for t in study.trials])


@pytest.mark.parametrize("number, command, message", rows())
def test_bad_input(folder, number, command, message, capsys):
    if "--device cuda" in command and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    before = snapshot(folder)
    code, stderr = run(command, folder, capsys)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("pairsearch: error:") and message in lines[0], lines[0]
    assert snapshot(folder) == before
