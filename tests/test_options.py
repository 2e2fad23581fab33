"""Typed options: parsing, ranges and the messages that name the option and the value."""

from __future__ import annotations

from typing import Literal

import pytest

from pairsearch.errors import PairsearchError
from pairsearch.options import Option, option_from_annotation, options_of


@pytest.mark.parametrize("option, raw, parsed", [
    (Option("n", "int", 1), "7", 7),
    (Option("n", "int", 1), 3.0, 3),
    (Option("x", "float", 1.0), "1e-3", 1e-3),
    (Option("b", "bool", False), "yes", True),
    (Option("b", "bool", True), "off", False),
    (Option("c", "choice", "a", choices=("a", "b")), " b ", "b"),
    (Option("w", "ints", (1,)), "128, 64", (128, 64)),
    (Option("w", "ints", (1,)), [16, 32], (16, 32)),
])
def test_values_parse_to_their_type(option, raw, parsed):
    assert option.parse(raw) == parsed


@pytest.mark.parametrize("option, raw, message", [
    (Option("n", "int", 1), "1.5", "bad value '1.5' for option 'n': expected int"),
    (Option("n", "int", 1), True, "for option 'n'"),
    (Option("x", "float", 1.0), "nan", "bad value 'nan' for option 'x'"),
    (Option("x", "float", 1.0, low=0.0, low_open=True), "0", "expected float in (0, inf)"),
    (Option("d", "float", 0.0, low=0.0, high=1.0, high_open=True), 1.0,
     "expected float in [0, 1)"),
    (Option("b", "bool", False), "maybe", "for option 'b': expected bool"),
    (Option("c", "choice", "a", choices=("a", "b")), "z", "expected a|b"),
    (Option("w", "ints", (1,)), "16,0", "comma-separated positive ints"),
    (Option("w", "ints", (1,)), "", "comma-separated positive ints"),
])
def test_bad_values_name_the_option_and_the_value(option, raw, message):
    with pytest.raises(PairsearchError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("|", r"\|")):
        option.parse(raw)


def test_options_are_read_from_a_signature():
    def builder(*, width: int = 4, rate: float = 0.5, kind: Literal["x", "y"] = "x",
                sizes: tuple[int, ...] = (2, 3), flag: bool = False) -> None:
        """A builder."""

    options = options_of(builder, {"rate": {"low": 0.0, "high": 1.0}})
    assert list(options) == ["width", "rate", "kind", "sizes", "flag"]
    assert options["kind"].choices == ("x", "y") and options["sizes"].default == (2, 3)
    assert options["rate"].describe() == "float in [0, 1]"
    with pytest.raises(PairsearchError, match="for option 'rate'"):
        options["rate"].parse("2")


def test_an_option_without_a_default_or_with_an_odd_type_is_a_programming_error():
    def no_default(*, width: int) -> None:
        """Missing default."""

    with pytest.raises(TypeError, match="needs a default"):
        options_of(no_default)
    with pytest.raises(TypeError, match="unsupported annotation"):
        option_from_annotation("x", dict, {})
