"""Models registered by name, as in timm: ``register_model``, ``create_model``, ``list_models``.

A model is a builder function whose keyword-only, typed arguments are its
options; the registry reads them from the signature, so a search space can
name an architecture as a string and set its options as strings too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from torch import nn

from pairsearch.errors import PairsearchError
from pairsearch.options import Option, options_of

# Ranges shared by every builder that declares these options.
_BOUNDS: dict[str, dict[str, Any]] = {
    "dropout": {"low": 0.0, "high": 1.0, "high_open": True},
    "hidden": {"low": 1},
    "head_hidden": {"low": 1},
    "base_channels": {"low": 1},
    "layers": {"low": 1},
    "branch_out": {"low": 1},
}


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    Attributes:
        name: Registry name.
        builder: Function building the ``nn.Module`` from keyword options.
        options: Typed options with defaults, in declaration order.
        digit_heads: Whether the model predicts each digit's class.
        summary: First line of the builder's docstring.
        pair_aux: Whether the model has an intermediate pair output (weighted by ``lambda``).
        pair_loss: Whether training puts a loss on the pair output; ``False`` for a model
            whose pair output is a fixed function of its digit predictions (report 002's
            naive model), which trains on its digit losses alone.
    """

    name: str
    builder: Callable[..., nn.Module]
    options: dict[str, Option]
    digit_heads: bool
    summary: str
    pair_aux: bool = False
    pair_loss: bool = True


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(digit_heads: bool, name: str | None = None, pair_aux: bool = False,
                   pair_loss: bool = True
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder under ``name`` (default: the function's name).

    Args:
        digit_heads: Whether the built model returns digit logits.
        name: Registry name, when it differs from the function's name.
        pair_aux: Whether the model returns an intermediate pair output.
        pair_loss: Whether the pair output is trained (see ``ModelEntry``).

    Raises:
        ValueError: If the name is taken, or a model without digit heads has no pair loss.
    """
    if not pair_loss and not digit_heads:
        raise ValueError("a model without a pair loss must have digit heads to train")

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered")
        summary = (builder.__doc__ or "").strip().splitlines()[0] if builder.__doc__ else ""
        _REGISTRY[key] = ModelEntry(key, builder, options_of(builder, _BOUNDS), digit_heads,
                                    summary, pair_aux, pair_loss)
        return builder

    return decorate


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``.

    Raises:
        PairsearchError: If no model has that name; the message lists the valid ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PairsearchError(
            f"unknown model {name!r}; valid models: {', '.join(list_models())}"
        ) from None


def resolve_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """All options of model ``name``: defaults overridden by ``options``, each checked.

    Raises:
        PairsearchError: On an unknown model, an unknown option or a bad value.
    """
    entry = model_entry(name)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise PairsearchError(
            f"unknown option {unknown[0]!r} for model {name!r}; its options: "
            f"{', '.join(entry.options) or '(none)'}"
        )
    return {key: (opt.parse(options[key]) if key in options else opt.default)
            for key, opt in entry.options.items()}


def create_model(name: str, **options: Any) -> nn.Module:
    """Build model ``name`` with ``options`` (strings or typed values).

    Raises:
        PairsearchError: On an unknown model, an unknown option or a bad value.
    """
    return model_entry(name).builder(**resolve_options(name, options))
