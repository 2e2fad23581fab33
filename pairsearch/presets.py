"""Named configurations (``pairsearch evaluate --preset NAME``), one TOML file each.

A preset is what a search found, kept where a user meets it first: ``pairsearch
evaluate`` with no ``--model`` trains the ``best`` preset. Each file records the
command that found it (``found_by``), so a better search result replaces it through
that one file::

    description = "..."
    found_by = "pairsearch run best"

    [settings]          # what `evaluate --set` takes, and the model
    model = "r004_siamese_cnn3"
    lr = 0.001
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pairsearch.errors import PairsearchError
from pairsearch.toml_files import read_toml, shipped

DEFAULT_PRESET = "best"
"""The preset ``pairsearch evaluate`` trains without ``--model`` or ``--preset``."""


@dataclass(frozen=True)
class Preset:
    """A named configuration.

    Attributes:
        name: The file's stem.
        description: What it is.
        found_by: The command (and study) that chose it.
        settings: The model and its options and training options, as ``--set`` takes them.
    """

    name: str
    description: str
    found_by: str
    settings: Mapping[str, Any]

    @property
    def model(self) -> str:
        """The registered model the preset trains."""
        return str(self.settings["model"])

    def options(self) -> dict[str, Any]:
        """Every setting but the model."""
        return {k: v for k, v in self.settings.items() if k != "model"}


def shipped_presets() -> list[str]:
    """Names of the presets shipped with pairsearch."""
    return shipped("presets")


def load_preset(spec: str) -> Preset:
    """A shipped preset by name, or a preset TOML file by path, checked.

    Raises:
        PairsearchError: If it does not exist, is not TOML, lacks ``[settings]`` with a
            ``model``, or a setting is not an option of its model (the message names it).
    """
    from pairsearch.evaluation import Config

    name, document = read_toml(spec, "presets", "preset")
    unknown = sorted(set(document) - {"description", "found_by", "settings"})
    if unknown:
        raise PairsearchError(f"preset {name!r}: unknown key {unknown[0]!r} (expected "
                              "description, found_by, [settings])")
    settings = document.get("settings")
    if not isinstance(settings, dict) or not isinstance(settings.get("model"), str):
        raise PairsearchError(f"preset {name!r} needs a [settings] table with model = \"NAME\"")
    preset = Preset(name, str(document.get("description", "")),
                    str(document.get("found_by", "")), dict(settings))
    try:
        Config.from_settings(preset.model, preset.options())
    except PairsearchError as error:
        raise PairsearchError(f"preset {name!r}: {error}") from None
    return preset
