"""TOML documents named either by a file path or by a file shipped in the package.

Search spaces (``pairsearch/spaces``) and experiments (``pairsearch/experiments``)
are both looked up this way, so both answer a missing or malformed file alike.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pairsearch.errors import PairsearchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def shipped(folder: str) -> list[str]:
    """Names (without ``.toml``) of the files shipped in ``pairsearch/<folder>``."""
    root = resources.files("pairsearch") / folder
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def read_toml(spec: str, folder: str, what: str) -> tuple[str, dict[str, Any]]:
    """The name and parsed document of a shipped file (``spec`` = its name) or a path.

    Args:
        spec: A shipped file's name, or a path to a TOML file.
        folder: The package folder of the shipped files, e.g. ``"spaces"``.
        what: What the file holds, for messages, e.g. ``"search space"``.

    Raises:
        PairsearchError: If no such file exists, it cannot be read, or it is not TOML.
    """
    path = Path(spec)
    names = shipped(folder)
    if not path.suffix and spec in names:
        text = (resources.files("pairsearch") / folder / f"{spec}.toml").read_text()
        name = spec
    else:
        if not path.is_file():
            kind = what.split()[-1]
            raise PairsearchError(f"{what} {spec!r} not found: no such file, and not a "
                                  f"shipped {kind} ({', '.join(names)})")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise PairsearchError(f"cannot read {what} {spec}: {error}") from None
        name = path.stem
    try:
        return name, tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PairsearchError(f"{what} {spec} is not valid TOML: {error}") from None
