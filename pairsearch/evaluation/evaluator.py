"""The evaluator: a pure function from (config, pairs, protocol, seed, device) to scores.

Like scikit-learn's ``cross_validate`` it knows nothing of searches or
storage: a search calls ``evaluate`` and stores what it returns.

Protocols:

- ``cv``: stratified K-fold cross-validation on the training pairs, repeated R
  times with different fold splits and seeds; the test pairs are never touched.
- ``test``: R trainings on all training pairs, each scored on the test pairs
  (the reports' "N runs" protocol).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Sequence

import numpy as np
import torch

from pairsearch.data import PairData, PairSet
from pairsearch.errors import PairsearchError
from pairsearch.evaluation.allocator import tune_allocator
from pairsearch.evaluation.config import Config
from pairsearch.evaluation.folds import stratified_folds
from pairsearch.evaluation.precision import conv_dtype, resolve_precision
from pairsearch.evaluation.training import (
    accuracy_of,
    batch_slices,
    mean_or_none,
    score_model,
    train_ensemble,
    train_model,
)
from pairsearch.models import count_parameters, create_model
from pairsearch.models.blocks import convolutions_in
from pairsearch.models.ensemble import Ensemble

EpochCallback = Callable[[int, float], None]
"""Called as ``callback(step, mean_validation_accuracy)`` after each epoch."""


@dataclass(frozen=True)
class Protocol:
    """How a configuration is scored.

    Attributes:
        kind: ``"cv"`` (K-fold on the training pairs) or ``"test"`` (train on all, score test).
        folds: K, for ``cv``.
        repeats: R: fold splits (``cv``) or trainings (``test``) with different seeds.

    Raises:
        PairsearchError: If ``kind`` is unknown, ``folds`` < 2 or ``repeats`` < 1.
    """

    kind: Literal["cv", "test"] = "cv"
    folds: int = 5
    repeats: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("cv", "test"):
            raise PairsearchError(f"unknown protocol {self.kind!r}; valid: cv, test")
        if self.kind == "cv" and self.folds < 2:
            raise PairsearchError(f"bad value {self.folds} for folds: K-fold needs K >= 2")
        if self.repeats < 1:
            raise PairsearchError(f"bad value {self.repeats} for repeats: needs at least 1")

    def describe(self) -> str:
        """E.g. ``"5-fold CV x 1"`` or ``"test x 10"``."""
        if self.kind == "cv":
            return f"{self.folds}-fold CV x {self.repeats}"
        return f"test x {self.repeats}"


@dataclass(frozen=True)
class RunScore:
    """One training of the configuration and its scores on held-out pairs.

    Attributes:
        repeat: Repeat index.
        fold: Fold index (``None`` under the test protocol).
        seed: Seed of this run's initialisation and shuffles.
        accuracy: Pair accuracy on the held-out pairs.
        f1: F1 of the "a ≤ b" class.
        digit_accuracy: Digit accuracy, ``None`` without digit heads.
        final_loss: Mean training loss of the last epoch.
        train_seconds: Wall time of the training.
    """

    repeat: int
    fold: Optional[int]
    seed: int
    accuracy: float
    f1: float
    digit_accuracy: Optional[float]
    final_loss: float
    train_seconds: float


@dataclass(frozen=True)
class Evaluation:
    """All runs of one configuration under one protocol.

    Attributes:
        config: What was trained.
        protocol: How it was scored.
        seed: The evaluation's seed.
        device: Device it ran on.
        data: Description of the digit source and pair counts.
        params: Trainable parameters.
        runs: Completed runs.
        failed: Why the evaluation failed (a diverging run), else ``None``.
        precision: Arithmetic of the training: ``fp32`` or ``bf16`` (convolution stacks).
    """

    config: Config
    protocol: Protocol
    seed: int
    device: str
    data: str
    params: int
    runs: tuple[RunScore, ...] = field(default_factory=tuple)
    failed: Optional[str] = None
    precision: str = "fp32"

    @property
    def accuracies(self) -> list[float]:
        """Pair accuracy of each run."""
        return [r.accuracy for r in self.runs]

    @property
    def accuracy_mean(self) -> float:
        """Mean pair accuracy over runs (NaN if none completed)."""
        return float(np.mean(self.accuracies)) if self.runs else float("nan")

    @property
    def accuracy_std(self) -> float:
        """Sample standard deviation of the accuracies (0 for one run)."""
        return float(np.std(self.accuracies, ddof=1)) if len(self.runs) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary of the aggregate and per-run scores."""
        runs = self.runs
        return {
            "accuracy_mean": self.accuracy_mean if runs else None,
            "accuracy_std": self.accuracy_std if runs else None,
            "accuracies": self.accuracies,
            "f1_mean": float(np.mean([r.f1 for r in runs])) if runs else None,
            "digit_accuracy_mean": mean_or_none([r.digit_accuracy for r in runs]),
            "final_loss_mean": float(np.mean([r.final_loss for r in runs])) if runs else None,
            "params": self.params,
            "train_seconds": float(sum(r.train_seconds for r in runs)),
            "train_seconds_per_run": float(np.mean([r.train_seconds for r in runs]))
            if runs else None,
            "failed": self.failed,
            "device": self.device,
            "precision": self.precision,
            "data": self.data,
            "protocol": {"kind": self.protocol.kind, "folds": self.protocol.folds,
                         "repeats": self.protocol.repeats},
            "seed": self.seed,
            "config": self.config.flat(),
            "runs": [r.__dict__ for r in runs],
        }


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        PairsearchError: On an unknown name, or ``cuda`` without a usable GPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise PairsearchError(f"--device {name}: no CUDA GPU is available on this machine")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise PairsearchError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N") \
                from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PairsearchError(f"--device {name}: only {torch.cuda.device_count()} GPU(s)")
        return device
    raise PairsearchError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")


def run_seed(seed: int, repeat: int, fold: Optional[int]) -> int:
    """A stable 31-bit seed for one run (``fold`` None: the test protocol), from the seed."""
    stream = 1 if fold is None else 2 + fold
    return int(np.random.SeedSequence([seed, repeat, stream]).generate_state(1)[0] & 0x7FFFFFFF)


def split_seed(seed: int, repeat: int) -> int:
    """The seed of repeat ``repeat``'s fold split."""
    return int(np.random.SeedSequence([seed, repeat, 0]).generate_state(1)[0] & 0x7FFFFFFF)


@dataclass(frozen=True)
class _Run:
    """One training of the protocol: which pairs it trains on and which score it."""

    repeat: int
    fold: Optional[int]
    seed: int
    train_index: torch.Tensor
    held_out: PairSet


def _runs(data: PairData | Sequence[PairData], protocol: Protocol, seed: int
          ) -> tuple[PairSet, list[_Run]]:
    """The training pairs every run indexes into, and every run in order (repeat-major).

    A sequence of draws (test protocol only) gives one run per draw: the draws'
    training pairs are concatenated and run r trains on draw r's part.
    """
    if not isinstance(data, PairData):
        draws = list(data)
        offsets = np.cumsum([0] + [len(d.train) for d in draws]).tolist()
        device = draws[0].train.inputs.device
        train = PairSet(*(torch.cat([getattr(d.train, name) for d in draws])
                          for name in ("inputs", "targets", "classes")))
        return train, [_Run(r, None, run_seed(seed, r, None),
                            torch.arange(offsets[r], offsets[r + 1], device=device), d.test)
                       for r, d in enumerate(draws)]
    device = data.train.inputs.device
    if protocol.kind == "test":
        everything = torch.arange(len(data.train), device=device)
        return data.train, [_Run(r, None, run_seed(seed, r, None), everything, data.test)
                            for r in range(protocol.repeats)]
    runs = []
    for repeat in range(protocol.repeats):
        for fold, (train, valid) in enumerate(
                stratified_folds(data.train.targets, protocol.folds, split_seed(seed, repeat))):
            runs.append(_Run(repeat, fold, run_seed(seed, repeat, fold), train.to(device),
                             data.train.subset(valid.to(device))))
    return data.train, runs


Engine = Literal["auto", "loop", "vmap", "sequential"]
ENGINES: tuple[str, ...] = ("auto", "loop", "vmap", "sequential")


def resolve_engine(engine: str, device: torch.device) -> str:
    """``auto`` → ``vmap`` on a GPU, ``loop`` on a CPU (see ``models.ensemble``).

    Raises:
        PairsearchError: On an unknown engine.
    """
    if engine not in ENGINES:
        raise PairsearchError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    if engine == "auto":
        return "vmap" if device.type == "cuda" else "loop"
    return engine


def _groups(runs: list[_Run], batch_size: int, engine: str) -> list[list[int]]:
    """Runs trained together: all of them, except where their step counts (loop) or
    training-set sizes (vmap: members are stacked, so batches must be equal) differ;
    one per group for the sequential engine."""
    if engine == "sequential":
        return [[index] for index in range(len(runs))]
    groups: dict[int, list[int]] = {}
    for index, run in enumerate(runs):
        n = len(run.train_index)
        key = n if engine == "vmap" else len(batch_slices(n, batch_size))
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def _train_group(engine: str, members: list[torch.nn.Module], runs: list[_Run],
                 train_pairs: PairSet, config: Config, generators: list[torch.Generator],
                 epoch_callback: EpochCallback | None, first_step: int
                 ) -> tuple[list[float], Optional[str], Optional[int], list[torch.nn.Module]]:
    """Train one group of runs: together as an ensemble, or one model (``sequential``).

    Returns:
        Each run's last-epoch loss, why training stopped early (else ``None``), the
        member that diverged (else ``None``), and the trained models (none on failure
        of an ensemble).
    """
    held_out = [run.held_out for run in runs]
    if engine == "sequential":
        (run,), (model,) = runs, members
        after_epoch = None
        if epoch_callback is not None:
            def after_epoch(epoch: int) -> None:
                epoch_callback(first_step + epoch, accuracy_of(model, held_out[0]))
        outcome = train_model(model, train_pairs.subset(run.train_index), config.train,
                              generators[0], after_epoch)
        return [outcome.final_loss], outcome.failed, 0 if outcome.failed else None, [model]
    ensemble = Ensemble(members, engine)
    after_epoch = None
    if epoch_callback is not None:
        def after_epoch(epoch: int) -> None:
            models = ensemble.members()
            epoch_callback(first_step + epoch, float(np.mean(
                [accuracy_of(m, h) for m, h in zip(models, held_out)])))
    result = train_ensemble(ensemble, train_pairs, [run.train_index for run in runs],
                            config.train, generators, after_epoch)
    trained = ensemble.members() if result.failed is None else []
    return result.final_losses, result.failed, result.failed_member, trained


def evaluate(config: Config, data: PairData | Sequence[PairData],
             protocol: Protocol = Protocol(), seed: int = 0,
             device: str | torch.device = "cpu",
             epoch_callback: EpochCallback | None = None,
             engine: str = "auto", precision: str = "auto") -> Evaluation:
    """Train and score ``config`` under ``protocol``.

    All the runs of the protocol (K folds × R repeats, or R trainings) are trained
    at once as one ensemble (``models.ensemble``); each run still has its own
    initialisation, shuffles, optimizer state and BatchNorm statistics, seeded by
    ``run_seed`` exactly as if it were trained alone.

    Args:
        config: The model and training options.
        data: Train and test pairs (moved to ``device`` here); or, for the test protocol,
            one draw of pairs per repeat (report 004's protocol: every run trains and is
            scored on pairs drawn afresh).
        protocol: ``cv`` (K folds x R repeats on the training pairs) or ``test``.
        seed: Seed of fold splits, initialisations and shuffles.
        device: Where to train (``resolve_device`` turns a name into a device).
        epoch_callback: Called after each epoch with a step number and the mean
            validation accuracy of the runs being trained (for pruning); costs one
            scoring pass per epoch.
        engine: ``auto``, ``loop``, ``vmap`` (how the ensemble runs its members) or
            ``sequential`` (one model after the other: the plain reference loop).
        precision: ``auto``, ``fp32`` or ``bf16``: the arithmetic of the convolution stacks
            while training (``evaluation.precision``; ``auto``: bf16 on a CPU with bf16
            instructions, else fp32).

    Returns:
        Per-run and aggregate scores; a diverging run stops the evaluation and is
        reported in ``failed``. A run's ``train_seconds`` is its share of the time of
        the ensemble it was trained in.

    Raises:
        PairsearchError: If the folds cannot be made, on an unknown engine or precision, or if
            draws are given to the CV protocol or their number is not ``protocol.repeats``.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    engine = resolve_engine(engine, device)
    precision = resolve_precision(precision, device)
    tune_allocator()
    if isinstance(data, PairData):
        data = data.to(device)
        described = f"{data.source}; {len(data.train)} train / {len(data.test)} test pairs"
    else:
        if protocol.kind != "test" or len(data) != protocol.repeats:
            raise PairsearchError(f"{len(data)} draws of pairs need the test protocol with "
                                  f"as many repeats (got {protocol.describe()})")
        data = [d.to(device) for d in data]
        described = (f"{data[0].source}; {len(data[0].train)} train / {len(data[0].test)} "
                     f"test pairs, drawn afresh for each of the {len(data)} runs")
    train_pairs, runs = _runs(data, protocol, seed)
    scores: dict[int, RunScore] = {}
    params = 0
    failed = None
    epochs = config.train.epochs
    for group_number, group in enumerate(_groups(runs, config.train.batch_size, engine)):
        members = []
        for index in group:
            torch.manual_seed(runs[index].seed)  # initialisation (and, sequentially, dropout)
            members.append(create_model(config.model, **config.model_options).to(device))
        params = count_parameters(members[0])
        generators = [torch.Generator(device=device).manual_seed(runs[index].seed)
                      for index in group]

        started = time.perf_counter()
        with convolutions_in(conv_dtype(precision)):
            losses, failure, failed_member, trained = _train_group(
                engine, members, [runs[index] for index in group], train_pairs, config,
                generators, epoch_callback, group_number * epochs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - started) / len(group)
        if failure:
            failed = f"run {group[failed_member] + 1} diverged: {failure}"
            break
        for index, model, loss in zip(group, trained, losses):
            run = runs[index]
            score = score_model(model, run.held_out)
            scores[index] = RunScore(run.repeat, run.fold, run.seed, score.accuracy, score.f1,
                                     score.digit_accuracy, loss, seconds)
    completed = tuple(scores[index] for index in sorted(scores))
    return Evaluation(config, protocol, seed, str(device), described, params, completed, failed,
                      precision)
