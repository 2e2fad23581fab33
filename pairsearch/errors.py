"""The exceptions the command line turns into a one-line error and exit code 2."""

from __future__ import annotations

from typing import Any


class PairsearchError(ValueError):
    """A bad input from the user: unknown name, bad value, missing data source, ..."""


class StudyOwned(PairsearchError):
    """A study that one process owns at a time (a GA's) is being run by another live one."""


class BadValue(PairsearchError):
    """A value out of range for a named parameter of a library call.

    The message names the Python parameter (``pop``); the command line, which knows
    its flags, names the flag instead (``--pop``) with ``for_flag``.

    Args:
        parameter: The parameter's name in the call that refused it.
        value: The value given.
        requirement: What the value must be, e.g. ``"needs at least 2"``.
    """

    def __init__(self, parameter: str, value: Any, requirement: str) -> None:
        self.parameter = parameter
        self.value = value
        self.requirement = requirement
        super().__init__(f"bad value {value!r} for {parameter}: {requirement}")

    def for_flag(self, flag: str) -> "BadValue":
        """The same error, naming ``flag`` instead of the parameter."""
        return BadValue(flag, self.value, self.requirement)
