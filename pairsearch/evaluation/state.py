"""Where an evaluation's trainings stand after some epochs: what continuing them needs.

Successive halving trains a configuration for a few epochs, keeps it if it ranks well,
and trains it longer. ``evaluate_many(..., keep_state=True)`` returns each configuration's
``TrainingState`` (per run: weights and buffers, optimizer state, the state of the
random generator that draws its shuffles, augmentations and dropout masks), and
``evaluate_many(..., resume=...)`` continues from it. The learning rate is constant, so
a continued training takes exactly the steps a from-scratch training to the longer
budget takes: on one device and precision its scores are the same, bit for bit
(tests/evaluation/test_resume.py). One exception: under the ``vmap`` engine (GPUs)
dropout masks come from the device's global random stream, not the run's generator, so
a continued run with dropout is a valid training but not the same one.

States travel as plain dictionaries of tensors (``to_dict`` / ``from_dict``), which
``torch.load(weights_only=True)`` reads back without unpickling code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from pairsearch.errors import PairsearchError


@dataclass(frozen=True)
class RunState:
    """One run (a fold of a repeat of a draw, or a test training) after some epochs.

    Attributes:
        weights: Its parameters and buffers by name (``Ensemble.member_weights``).
        optimizer: Its optimizer state (``Optimizer.member_state``).
        generator: Its random generator's state (``torch.Generator.get_state``).
        final_loss: Its mean training loss over the last epoch run.
    """

    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    generator: torch.Tensor
    final_loss: float


@dataclass(frozen=True)
class TrainingState:
    """Every run of one configuration's evaluation after ``epochs`` epochs.

    Attributes:
        epochs: Epochs trained so far.
        runs: One state per run of the protocol, in the evaluator's run order.
    """

    epochs: int
    runs: tuple[RunState, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionaries, lists, numbers and CPU tensors."""
        return {"epochs": self.epochs,
                "runs": [{"weights": {k: v.cpu() for k, v in run.weights.items()},
                          "optimizer": {k: ([t.cpu() for t in v] if k != "steps" else v)
                                        for k, v in run.optimizer.items()},
                          "generator": run.generator.cpu(),
                          "final_loss": run.final_loss} for run in self.runs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingState":
        """The inverse of ``to_dict``.

        Raises:
            PairsearchError: If ``data`` is not a training state.
        """
        try:
            runs = tuple(RunState(dict(run["weights"]), dict(run["optimizer"]),
                                  run["generator"], float(run["final_loss"]))
                         for run in data["runs"])
            epochs = int(data["epochs"])
        except (KeyError, TypeError, ValueError) as error:
            raise PairsearchError(f"not a training state ({error})") from None
        if epochs < 1 or not runs:
            raise PairsearchError(f"not a training state (epochs {epochs}, {len(runs)} runs)")
        return cls(epochs, runs)
