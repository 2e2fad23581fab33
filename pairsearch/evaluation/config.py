"""What one evaluation trains: a model with its options and the training options.

``Config`` is the unit every layer passes around: the evaluator trains it,
searches propose it, the store keys results by it. Its flat form
(``config.flat()``) is the dictionary a user writes with ``--set`` or in a
search space: ``{"model": "siamese_aux", "lr": 0.001, "lambda": 0.7, ...}``.
"""

from __future__ import annotations

import functools
import json
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Mapping

from pairsearch.errors import PairsearchError
from pairsearch.evaluation.losses import LossName, LossRecipe
from pairsearch.evaluation.optimizers import OptimizerName
from pairsearch.models import model_entry, resolve_options
from pairsearch.options import Option, option_from_annotation

# ``lambda`` is a Python keyword: the dataclass field is ``lambda_``, the user writes ``lambda``.
_KEY_ALIASES = {"lambda_": "lambda"}
_FIELD_NAMES = {v: k for k, v in _KEY_ALIASES.items()}

ScoringMode = Literal["eval", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """Training options shared by every model.

    Attributes:
        comparison_loss: Loss on the pair output (see ``evaluation.losses``).
        digit_loss: Loss on each digit head (ignored by models without digit heads).
        lambda_: Weight of the digit losses (and of cnn_aux1's intermediate pair loss):
            total = comparison + lambda × (digit_a + digit_b).
        optimizer: sgd, adam, adagrad or adamw, with torch's defaults otherwise.
        lr: Learning rate.
        batch_size: Mini-batch size.
        epochs: Passes over the training pairs.
        weighting: Which term ``lambda`` weighs: ``digits`` (loss = comparison + λ ×
            digits) or ``comparison`` (report 003: loss = digits + λ × comparison).
        scoring: The mode a trained network's final scores are taken in: ``eval``
            (dropout off, BatchNorm's running statistics) or ``train``, as if
            ``model.eval()`` were never called (dropout masks drawn, BatchNorm on the
            scored pairs' own statistics): an ablation of report figures, not a setting.
        shift: Data augmentation: each training digit moved by up to this many pixels
            along each axis at every step (``evaluation.augment``); 0: none. Scored
            pairs are never augmented.
        rotate: Data augmentation: each training digit turned by up to this many
            degrees at every step; 0: none.
    """

    comparison_loss: LossName = "ce"
    digit_loss: LossName = "ce"
    lambda_: float = 1.0
    optimizer: OptimizerName = "adam"
    lr: float = 1e-3
    batch_size: int = 100
    epochs: int = 25
    weighting: Literal["digits", "comparison"] = "digits"
    scoring: ScoringMode = "eval"
    shift: int = 0
    rotate: float = 0.0

    def loss_recipe(self, pair_loss: bool = True) -> LossRecipe:
        """The loss these options describe (``pair_loss=False``: no comparison term)."""
        return LossRecipe(self.comparison_loss if pair_loss else None, self.digit_loss,
                          self.lambda_, self.weighting)


# Options added after studies were stored: left out of ``flat()`` at their default, so
# the keys of configurations made before them stay the same.
_OMITTED_AT_DEFAULT = {"weighting": "digits", "scoring": "eval", "shift": 0, "rotate": 0.0}

_TRAIN_BOUNDS: dict[str, dict[str, Any]] = {
    "lambda": {"low": 0.0},
    "lr": {"low": 0.0, "low_open": True},
    "batch_size": {"low": 1},
    "epochs": {"low": 1},
    "shift": {"low": 0, "high": 4},  # a 14-pixel digit moved further leaves the image
    "rotate": {"low": 0.0, "high": 90.0},
}


def train_options() -> dict[str, Option]:
    """Typed options of ``TrainConfig``, keyed as the user writes them."""
    return dict(_train_options())


@functools.lru_cache(maxsize=None)
def _train_options() -> dict[str, Option]:
    # Read once: get_type_hints costs ~0.3 ms, and every configuration built asks for it.
    hints = typing.get_type_hints(TrainConfig)
    options = {}
    for f in fields(TrainConfig):
        key = _KEY_ALIASES.get(f.name, f.name)
        options[key] = option_from_annotation(key, hints[f.name], f.default, _TRAIN_BOUNDS)
    return options


def ignored_train_options(model: str) -> frozenset[str]:
    """The training options model ``model`` does not read (``Config.effective``).

    ``digit_loss`` only matters with digit heads, ``lambda`` with digit heads or an
    intermediate pair output, and neither ``comparison_loss`` nor ``lambda`` for a model
    whose pair output is not trained (report 002's naive).

    Raises:
        PairsearchError: On an unknown model.
    """
    entry = model_entry(model)
    ignored = set()
    if not entry.digit_heads:
        ignored.add("digit_loss")
        if not entry.pair_aux:
            ignored.add("lambda")
    if not entry.pair_loss:
        ignored |= {"comparison_loss", "lambda"}
    if not entry.digit_heads or not entry.pair_loss:
        ignored.add("weighting")
    return frozenset(ignored)


@dataclass(frozen=True)
class Config:
    """A model, its options and the training options: everything one evaluation trains.

    Attributes:
        model: Registered model name.
        model_options: Every option of the model, defaults filled in.
        train: Training options.
    """

    model: str
    model_options: Mapping[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def digit_heads(self) -> bool:
        """Whether the model has digit heads (and so uses ``digit_loss``)."""
        return model_entry(self.model).digit_heads

    def loss_recipe(self) -> LossRecipe:
        """What a training of this configuration minimises (``evaluation.losses``)."""
        return self.train.loss_recipe(model_entry(self.model).pair_loss)

    def effective(self) -> dict[str, Any]:
        """``flat()`` without the training options this model ignores.

        ``digit_loss`` only matters with digit heads, ``lambda`` with digit heads or
        an intermediate pair output, and neither ``comparison_loss`` nor ``lambda`` for
        a model whose pair output is not trained (report 002's naive): two
        configurations with equal ``effective()`` train the same network the same way.
        """
        flat = self.flat()
        for key in ignored_train_options(self.model):
            flat.pop(key, None)
        return flat

    def ensemble_key(self) -> str:
        """What configurations must share to train as one ensemble: the network and the
        optimizer's kind, batch size and epochs (they may differ in loss, λ and lr)."""
        shared = {k: v for k, v in self.flat().items()
                  if k not in ("comparison_loss", "digit_loss", "lambda", "lr")}
        return json.dumps(shared, sort_keys=True)

    def key(self) -> str:
        """A canonical string of ``effective()``: equal keys, equal trainings."""
        return json.dumps(self.effective(), sort_keys=True)

    def flat(self) -> dict[str, Any]:
        """``{"model": ..., **model options, **training options}`` with user-facing keys."""
        train = {_KEY_ALIASES.get(k, k): v for k, v in asdict(self.train).items()}
        for key, default in _OMITTED_AT_DEFAULT.items():
            if train[key] == default:
                del train[key]
        options = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_options.items()}
        return {"model": self.model, **options, **train}

    @classmethod
    def from_settings(cls, model: str, settings: Mapping[str, Any] | None = None) -> "Config":
        """Build and check a configuration from ``key=value`` settings.

        Args:
            model: Registered model name.
            settings: Model options and training options, as strings or typed values.

        Returns:
            The checked configuration, every default filled in.

        Raises:
            PairsearchError: On an unknown model, an unknown key or a bad value; the
                message names the key and the value.
        """
        settings = dict(settings or {})
        entry = model_entry(model)
        train_opts = train_options()
        unknown = sorted(set(settings) - set(train_opts) - set(entry.options))
        if unknown:
            valid = list(entry.options) + list(train_opts)
            raise PairsearchError(f"unknown option {unknown[0]!r} for model {model!r}; valid: "
                                  f"{', '.join(valid)}")
        model_settings = {k: v for k, v in settings.items() if k in entry.options}
        train_values = {}
        for key, option in train_opts.items():
            value = option.parse(settings[key]) if key in settings else option.default
            train_values[_FIELD_NAMES.get(key, key)] = value
        return cls(model, resolve_options(model, model_settings), TrainConfig(**train_values))
