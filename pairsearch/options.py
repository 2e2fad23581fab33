"""Typed options: one description per option, read from a signature or dataclass.

Model builders and the training configuration declare their options as typed
keyword arguments with defaults. ``Option`` turns such a declaration into
something the command line can list (``pairsearch models``), parse
(``--set key=value``) and check (a bad value names the option and the value).
"""

from __future__ import annotations

import inspect
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal, get_args, get_origin

from pairsearch.errors import PairsearchError

_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}


@dataclass(frozen=True)
class Option:
    """One typed option with a default.

    Attributes:
        name: The option's key, as written after ``--set``.
        kind: One of ``"int"``, ``"float"``, ``"bool"``, ``"choice"``, ``"ints"``
            (a tuple of positive integers written ``128,64``).
        default: The value used when the option is not set.
        choices: The allowed values of a ``"choice"`` option.
        low: Smallest allowed value of a number (inclusive unless ``low_open``).
        high: Largest allowed value of a number (exclusive when ``high_open``).
    """

    name: str
    kind: str
    default: Any
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        """A short human description of the allowed values."""
        if self.kind == "choice":
            return "|".join(self.choices)
        if self.kind == "ints":
            return "comma-separated positive ints"
        if self.low is None and self.high is None:
            return self.kind
        lo = "" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = "" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        return f"{self.kind} in {lo or '(-inf'}, {hi or 'inf)'}"

    def parse(self, value: Any) -> Any:
        """Turn a value (a string from the command line, or a typed value) into a checked value.

        Args:
            value: The raw value.

        Returns:
            The value converted to the option's type.

        Raises:
            PairsearchError: If the value cannot be converted or is out of range.
        """
        try:
            parsed = self._convert(value)
        except (TypeError, ValueError):
            raise PairsearchError(
                f"bad value {value!r} for option {self.name!r}: expected {self.describe()}"
            ) from None
        self._check_range(parsed, value)
        return parsed

    def _convert(self, value: Any) -> Any:
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word not in _BOOL_WORDS:
                raise ValueError(value)
            return _BOOL_WORDS[word]
        if self.kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(value)
                return int(value)
            return int(str(value).strip())
        if self.kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        if self.kind == "choice":
            word = str(value).strip()
            if word not in self.choices:
                raise ValueError(value)
            return word
        if self.kind == "ints":
            if isinstance(value, (list, tuple)):
                items = [int(v) for v in value]
            else:
                items = [int(v) for v in str(value).replace(" ", "").split(",") if v != ""]
            if not items or any(v < 1 for v in items):
                raise ValueError(value)
            return tuple(items)
        raise AssertionError(f"unknown option kind {self.kind}")

    def _check_range(self, parsed: Any, raw: Any) -> None:
        if self.kind not in ("int", "float"):
            return
        too_low = self.low is not None and (parsed <= self.low if self.low_open else parsed < self.low)
        too_high = self.high is not None and (
            parsed >= self.high if self.high_open else parsed > self.high
        )
        if too_low or too_high:
            raise PairsearchError(
                f"bad value {raw!r} for option {self.name!r}: expected {self.describe()}"
            )


def option_from_annotation(name: str, annotation: Any, default: Any,
                           bounds: dict[str, dict[str, Any]] | None = None) -> Option:
    """Build an ``Option`` from a type annotation and a default.

    Args:
        name: The option's key.
        annotation: ``int``, ``float``, ``bool``, a ``Literal[...]`` of strings or
            ``tuple[int, ...]``.
        default: The default value.
        bounds: Optional per-name keyword arguments for ``Option`` (``low``, ``high``, ...).

    Returns:
        The option.
    """
    extra = (bounds or {}).get(name, {})
    if get_origin(annotation) is Literal:
        return Option(name, "choice", default, choices=tuple(get_args(annotation)), **extra)
    if get_origin(annotation) is tuple:
        return Option(name, "ints", tuple(default), **extra)
    kinds = {bool: "bool", int: "int", float: "float"}
    if annotation not in kinds:
        raise TypeError(f"option {name!r} has unsupported annotation {annotation!r}")
    return Option(name, kinds[annotation], default, **extra)


def options_of(function: Callable[..., Any],
               bounds: dict[str, dict[str, Any]] | None = None) -> dict[str, Option]:
    """The typed keyword-only options of a function, in declaration order."""
    hints = typing.get_type_hints(function, include_extras=False)
    options = {}
    for param in inspect.signature(function).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(f"option {param.name!r} of {function.__name__} needs a default")
        options[param.name] = option_from_annotation(param.name, hints[param.name],
                                                     param.default, bounds)
    return options
