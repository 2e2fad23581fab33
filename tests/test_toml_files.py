"""TOML documents named by a shipped name or a path, and their errors."""

from __future__ import annotations

import pytest

from pairsearch.errors import PairsearchError
from pairsearch.toml_files import read_toml, shipped


def test_shipped_files_are_listed_and_read_by_name():
    assert {"quick", "report002"} <= set(shipped("spaces"))
    name, document = read_toml("quick", "spaces", "search space")
    assert name == "quick" and "model" in document["params"]


def test_a_path_is_read_and_named_by_its_stem(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[params]\nlr = [0.1]\n')
    assert read_toml(str(path), "spaces", "search space") == ("mine", {"params": {"lr": [0.1]}})


def test_a_missing_file_lists_the_shipped_ones(tmp_path):
    with pytest.raises(PairsearchError, match=r"search space 'nope' not found: no such file, "
                                              r"and not a shipped space \(.*quick.*\)"):
        read_toml("nope", "spaces", "search space")


def test_malformed_and_unreadable_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[params\n")
    with pytest.raises(PairsearchError, match="is not valid TOML"):
        read_toml(str(bad), "spaces", "search space")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PairsearchError, match="cannot read search space"):
        read_toml(str(binary), "spaces", "search space")
