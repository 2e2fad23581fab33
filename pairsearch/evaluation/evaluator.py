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

import copy
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

import numpy as np
import torch

from pairsearch.names import Attr
from pairsearch.data import PairData, PairSet
from pairsearch.errors import BadValue
from pairsearch.evaluation.allocator import tune_allocator
from pairsearch.evaluation.config import Config
from pairsearch.evaluation.folds import stratified_folds
from pairsearch.evaluation.initial import initial_weights
from pairsearch.evaluation.precision import conv_dtype, resolve_precision
from pairsearch.evaluation.state import RunState, TrainingState
from pairsearch.evaluation.training import (
    accuracy_of,
    batch_slices,
    mean_or_none,
    score_model,
    train_ensemble,
    train_model,
)
from pairsearch.models import count_parameters
from pairsearch.models.blocks import convolutions_in
from pairsearch.models.ensemble import Ensemble, load_weights
from pairsearch.names import ENGINES
from pairsearch.seeds import draw_seed, run_seed, split_seed

EpochCallback = Callable[[int, float], Optional[bool]]
"""Called as ``callback(step, mean_validation_accuracy)`` after each epoch; ``True`` stops."""


@dataclass(frozen=True)
class Protocol:
    """How a configuration is scored.

    Attributes:
        kind: ``"cv"`` (K-fold on the training pairs) or ``"test"`` (train on all, score test).
        folds: K, for ``cv``.
        repeats: R: fold splits (``cv``) or trainings (``test``) with different seeds, per draw.
        draws: D: independent draws of the pairs (``data.generate_draws``); every draw gets
            the R repeats, so an evaluation holds D × R trainings (× K folds for ``cv``).

    Raises:
        PairsearchError: If ``kind`` is unknown, ``folds`` < 2, ``repeats`` < 1 or
            ``draws`` < 1.
    """

    kind: Literal["cv", "test"] = "cv"
    folds: int = 5
    repeats: int = 1
    draws: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("cv", "test"):
            raise BadValue("kind", self.kind, "unknown protocol; valid: cv, test")
        if self.kind == "cv" and self.folds < 2:
            raise BadValue("folds", self.folds, "K-fold needs K >= 2")
        if self.repeats < 1:
            raise BadValue("repeats", self.repeats, "needs at least 1")
        if self.draws < 1:
            raise BadValue("draws", self.draws, "needs at least 1")

    def describe(self) -> str:
        """E.g. ``"5-fold CV x 1"``, ``"test x 10"`` or ``"test x 10 x 3 draws"``."""
        text = f"{self.folds}-fold CV x {self.repeats}" if self.kind == "cv" else \
            f"test x {self.repeats}"
        return text if self.draws == 1 else f"{text} x {self.draws} draws"


@dataclass(frozen=True)
class RunScore:
    """One training of the configuration and its scores on held-out pairs.

    Attributes:
        repeat: Repeat index (within its draw).
        fold: Fold index (``None`` under the test protocol).
        seed: Seed of this run's initialisation and shuffles.
        accuracy: Pair accuracy on the held-out pairs.
        f1: F1 of the "a ≤ b" class.
        digit_accuracy: Digit accuracy, ``None`` without digit heads.
        final_loss: Mean training loss of the last epoch.
        train_seconds: Wall time of the training.
        draw: Which draw of the pairs it trained on.
        train_accuracy: Pair accuracy on the pairs it trained on (a report may print that
            figure: report 001's table 1 gives "train results").
    """

    repeat: int
    fold: Optional[int]
    seed: int
    accuracy: float
    f1: float
    digit_accuracy: Optional[float]
    final_loss: float
    train_seconds: float
    draw: int = 0
    train_accuracy: Optional[float] = None


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
        stopped_at: The step after which the epoch callback stopped the training (a
            pruned trial), else ``None``.
        cpu_threads: On a CPU, torch's thread count and ``OMP_NUM_THREADS``: another
            thread count changes the training's rounding and so its scores, as a new seed
            would (docs/scaling.md); else ``None``.
        state: Where every run's training stands at its end, to continue it later
            (``evaluate(..., keep_state=True)``), else ``None``.
        resumed_from: The epochs of the state the trainings continued from, else ``None``.
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
    stopped_at: Optional[int] = None
    cpu_threads: Optional[str] = None
    state: Optional[TrainingState] = field(default=None, repr=False, compare=False)
    resumed_from: Optional[int] = None

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

    @property
    def draw_means(self) -> list[float]:
        """Mean accuracy of each draw of the pairs, in draw order."""
        draws = sorted({r.draw for r in self.runs})
        return [float(np.mean([r.accuracy for r in self.runs if r.draw == d])) for d in draws]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary of the aggregate and per-run scores."""
        runs = self.runs
        means = self.draw_means
        return {
            "accuracy_mean": self.accuracy_mean if runs else None,
            "accuracy_std": self.accuracy_std if runs else None,
            Attr.ACCURACIES: self.accuracies,
            "draw_means": means,
            "draw_std": float(np.std(means, ddof=1)) if len(means) > 1 else None,
            "f1_mean": float(np.mean([r.f1 for r in runs])) if runs else None,
            "digit_accuracy_mean": mean_or_none([r.digit_accuracy for r in runs]),
            "train_accuracies": [r.train_accuracy for r in runs],
            "final_loss_mean": float(np.mean([r.final_loss for r in runs])) if runs else None,
            "params": self.params,
            "train_seconds": float(sum(r.train_seconds for r in runs)),
            "train_seconds_per_run": float(np.mean([r.train_seconds for r in runs]))
            if runs else None,
            "failed": self.failed,
            "device": self.device,
            "precision": self.precision,
            "cpu_threads": self.cpu_threads,
            "resumed_from": self.resumed_from,
            "data": self.data,
            "protocol": {"kind": self.protocol.kind, "folds": self.protocol.folds,
                         "repeats": self.protocol.repeats, "draws": self.protocol.draws},
            "seed": self.seed,
            "config": self.config.flat(),
            "runs": [r.__dict__ for r in runs],
        }


def cpu_threads(device: torch.device) -> Optional[str]:
    """``"torch N, OMP_NUM_THREADS M"`` on a CPU (what decides its numerics), else ``None``."""
    if device.type != "cpu":
        return None
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    return f"torch {torch.get_num_threads()}, OMP_NUM_THREADS {omp}"


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
            raise BadValue("device", name, "no CUDA GPU is available on this machine")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise BadValue("device", name, "expected auto, cpu, cuda or cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BadValue("device", name, f"only {torch.cuda.device_count()} GPU(s)")
        return device
    raise BadValue("device", name, "unknown device; valid: auto, cpu, cuda, cuda:N")


@dataclass(frozen=True)
class _Run:
    """One training of the protocol: which pairs it trains on and which score it."""

    draw: int
    repeat: int
    fold: Optional[int]
    seed: int
    train_index: torch.Tensor
    held_out: PairSet


def _runs(draws: Sequence[PairData], protocol: Protocol, seed: int
          ) -> tuple[PairSet, list[_Run]]:
    """The training pairs every run indexes into, and every run in order.

    Draw-major, then repeat-major. The draws' training pairs are concatenated; draw d's
    runs index into its part, with the seeds of ``seeds.draw_seed(seed, d)`` (draw 0:
    ``seed`` itself, so one draw is the single-draw evaluation).
    """
    offsets = np.cumsum([0] + [len(d.train) for d in draws]).tolist()
    device = draws[0].train.inputs.device
    train = draws[0].train if len(draws) == 1 else PairSet(
        *(torch.cat([getattr(d.train, name) for d in draws])
          for name in ("inputs", "targets", "classes")))
    runs = []
    for number, data in enumerate(draws):
        base = draw_seed(seed, number)
        own = torch.arange(offsets[number], offsets[number + 1], device=device)
        for repeat in range(protocol.repeats):
            if protocol.kind == "test":
                runs.append(_Run(number, repeat, None, run_seed(base, repeat, None), own,
                                 data.test))
                continue
            folds = stratified_folds(data.train.targets, protocol.folds,
                                     split_seed(base, repeat))
            for fold, (fit, valid) in enumerate(folds):
                runs.append(_Run(number, repeat, fold, run_seed(base, repeat, fold),
                                 own[fit.to(device)], data.train.subset(valid.to(device))))
    return train, runs


Engine = Literal["auto", "loop", "vmap", "sequential"]


def resolve_engine(engine: str, device: torch.device) -> str:
    """``auto`` → ``vmap`` on a GPU, ``loop`` on a CPU (see ``models.ensemble``).

    Raises:
        PairsearchError: On an unknown engine.
    """
    if engine not in ENGINES:
        raise BadValue("engine", engine, f"valid: {', '.join(ENGINES)}")
    if engine == "auto":
        return "vmap" if device.type == "cuda" else "loop"
    return engine


@dataclass(frozen=True)
class _Member:
    """One training inside a batched evaluation: configuration ``config``'s run ``run``."""

    config: int
    run: int


def _groups(configs: Sequence[Config], runs: list[_Run], engine: str,
            starts: Sequence[int]) -> list[list[_Member]]:
    """Trainings done together: those of configurations sharing an ensemble key (the
    network, optimizer, batch size and epochs) and the epoch they start from (0, or a
    resumed state's: their optimizer steps must agree) whose step counts (loop) or
    training-set sizes (vmap: members are stacked, so batches must be equal) agree; one
    per group for the sequential engine. Within a group, members are ordered by learning rate
    (then configuration and run), so each rate is a contiguous slice for the optimizer."""
    if engine == "sequential":
        return [[_Member(c, r)] for c in range(len(configs)) for r in range(len(runs))]
    groups: dict[tuple, list[_Member]] = {}
    for c, config in enumerate(configs):
        for r, run in enumerate(runs):
            n = len(run.train_index)
            size = n if engine == "vmap" else len(batch_slices(n, config.train.batch_size))
            groups.setdefault((config.ensemble_key(), size, starts[c]), []).append(
                _Member(c, r))
    return [sorted(group, key=lambda m: (configs[m.config].train.lr, m.config, m.run))
            for group in groups.values()]


@dataclass
class _Progress:
    """What is known about one configuration while its runs train."""

    scores: dict[int, RunScore] = field(default_factory=dict)
    states: dict[int, RunState] = field(default_factory=dict)
    params: int = 0
    failed: Optional[str] = None
    stopped_at: Optional[int] = None
    groups_done: int = 0

    @property
    def finished(self) -> bool:
        return self.failed is not None or self.stopped_at is not None


def evaluate(config: Config, data: PairData | Sequence[PairData],
             protocol: Protocol = Protocol(), seed: int = 0,
             device: str | torch.device = "cpu",
             epoch_callback: EpochCallback | None = None,
             engine: str = "auto", precision: str = "auto",
             train_accuracy: bool = True, keep_state: bool = False,
             resume: Optional[TrainingState] = None) -> Evaluation:
    """Train and score ``config`` under ``protocol``.

    All the runs of the protocol (D draws × R repeats × K folds, or D × R trainings) are
    trained at once as one ensemble (``models.ensemble``); each run still has its own
    initialisation, shuffles, optimizer state and BatchNorm statistics, seeded by
    ``seeds.run_seed`` exactly as if it were trained alone.

    Args:
        config: The model and training options.
        data: Train and test pairs (moved to ``device`` here); one ``PairData`` per draw
            when ``protocol.draws`` > 1 (``data.generate_draws``).
        protocol: ``cv`` (K folds x R repeats on the training pairs) or ``test``.
        seed: Seed of fold splits, initialisations and shuffles (of draw 0; draw d uses
            ``seeds.draw_seed(seed, d)``).
        device: Where to train (``resolve_device`` turns a name into a device).
        epoch_callback: Called after each epoch with a step number and the mean
            validation accuracy of the runs being trained; returning ``True`` stops the
            training (a pruned trial: ``stopped_at`` in the result). Costs one scoring
            pass per epoch.
        engine: ``auto``, ``loop``, ``vmap`` (how the ensemble runs its members) or
            ``sequential`` (one model after the other: the plain reference loop).
        precision: ``auto``, ``fp32`` or ``bf16``: the arithmetic of the convolution stacks
            while training (``evaluation.precision``; ``auto``: bf16 on a CPU with bf16
            instructions, else fp32).
        train_accuracy: Also score each run on the pairs it trained on (``RunScore.
            train_accuracy``, else ``None``): one more forward pass over them, about a
            sixth of a 1-epoch evaluation (25 of 147 ms on the quick space, 2 CPU
            cores), which searches skip unless a report's table asks for it.
        keep_state: Return every run's ``TrainingState`` at the end (``Evaluation.state``)
            for a later ``resume``.
        resume: Continue the trainings from this state (of the same configuration,
            protocol, seed, data and device, at fewer epochs) instead of starting them:
            ``config.train.epochs - resume.epochs`` more epochs, which give the scores a
            from-scratch training to ``config.train.epochs`` gives (``evaluation.state``).

    Returns:
        Per-run and aggregate scores; a diverging run stops the evaluation and is
        reported in ``failed``. A run's ``train_seconds`` is its share of the time of
        the ensemble it was trained in (since ``resume``'s epochs, when resumed).

    Raises:
        PairsearchError: If the folds cannot be made, on an unknown engine or precision,
            if the number of draws given is not ``protocol.draws``, or if ``resume`` does
            not fit (its runs or epochs; the sequential engine cannot keep or resume).
    """
    callbacks = None if epoch_callback is None else [epoch_callback]
    return evaluate_many([config], data, protocol, seed, device, callbacks, engine,
                         precision, train_accuracy, keep_state, [resume])[0]


def evaluate_many(configs: Sequence[Config], data: PairData | Sequence[PairData],
                  protocol: Protocol = Protocol(), seed: int = 0,
                  device: str | torch.device = "cpu",
                  epoch_callbacks: Sequence[EpochCallback | None] | None = None,
                  engine: str = "auto", precision: str = "auto",
                  train_accuracy: bool = True, keep_state: bool = False,
                  resume: Sequence[Optional[TrainingState]] | None = None
                  ) -> list[Evaluation]:
    """``evaluate`` for several configurations, those of one architecture trained together.

    Configurations that share a network, an optimizer, a batch size and epochs
    (``Config.ensemble_key``) train as one ensemble whose members differ in loss, λ and
    learning rate (as HFTA fuses same-shape models with per-member hyper-parameters).
    Each member's arithmetic is its own, so each configuration's evaluation equals the
    one ``evaluate`` gives it alone; a configuration that diverges or is stopped by its
    callback leaves the others training.

    Args:
        configs: The configurations.
        data: As for ``evaluate``.
        protocol: As for ``evaluate``.
        seed: As for ``evaluate``.
        device: As for ``evaluate``.
        epoch_callbacks: One per configuration (or ``None``), as ``evaluate``'s.
        engine: As for ``evaluate``.
        precision: As for ``evaluate``.
        train_accuracy: As for ``evaluate``.
        keep_state: As for ``evaluate``.
        resume: One state (or ``None``: from scratch) per configuration, as ``evaluate``'s.

    Returns:
        One evaluation per configuration, in order.

    Raises:
        PairsearchError: As ``evaluate``.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    engine = resolve_engine(engine, device)
    precision = resolve_precision(precision, device)
    tune_allocator()
    draws = [data] if isinstance(data, PairData) else list(data)
    if len(draws) != protocol.draws:
        raise BadValue("data", f"{len(draws)} draws", f"the protocol has {protocol.draws}")
    draws = [d.to(device) for d in draws]
    described = f"{draws[0].source}; {len(draws[0].train)} train / {len(draws[0].test)} test pairs"
    if draws[0].inputs != "standardised":
        described += f", {draws[0].inputs} inputs"
    if len(draws) > 1:
        described += f", {len(draws)} draws"
    callbacks = list(epoch_callbacks) if epoch_callbacks is not None else [None] * len(configs)
    train_pairs, runs = _runs(draws, protocol, seed)
    resume = list(resume) if resume is not None else [None] * len(configs)
    _check_resume(configs, resume, len(runs), engine, keep_state)
    starts = [state.epochs if state is not None else 0 for state in resume]
    progress = [_Progress() for _ in configs]
    group_number: dict[int, int] = {c: 0 for c in range(len(configs))}
    for group in _groups(configs, runs, engine, starts):
        group = [m for m in group if not progress[m.config].finished]
        if not group:
            continue
        # Each run's initialisation from its own seed (the global RNG untouched), built
        # once per process: the group shares a network, so one template serves it.
        weights = []
        for member in group:
            config = configs[member.config]
            template, initial = initial_weights(config.model, config.model_options,
                                                runs[member.run].seed, device)
            weights.append(initial)
        params = count_parameters(template)
        for member in group:
            progress[member.config].params = params
        generators = [torch.Generator(device=device).manual_seed(runs[m.run].seed)
                      for m in group]
        saved = [resume[m.config].runs[m.run] if resume[m.config] is not None else None
                 for m in group]
        for index, (generator, state) in enumerate(zip(generators, saved)):
            if state is not None:  # where the earlier training left the run
                weights[index] = state.weights
                generator.set_state(state.generator)
        steps = {c: group_number[c] * configs[c].train.epochs
                 for c in {m.config for m in group}}
        started = time.perf_counter()
        with convolutions_in(conv_dtype(precision)):
            losses, trained, states = _train_group(
                engine, template, weights, group, runs, train_pairs, configs, generators,
                callbacks, steps, progress, starts[group[0].config], saved, keep_state)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - started) / len(group)
        for c in {m.config for m in group}:
            group_number[c] += 1
        for index, (member, model, loss) in enumerate(zip(group, trained, losses)):
            if progress[member.config].finished:
                continue
            run = runs[member.run]
            if states is not None:
                progress[member.config].states[member.run] = states[index]
            fitted = (accuracy_of(model, train_pairs.subset(run.train_index))
                      if train_accuracy else None)
            # Last: scoring in train mode moves BatchNorm's running statistics.
            scoring = configs[member.config].train.scoring
            score = score_model(model, run.held_out, scoring,
                                torch.Generator(device=device).manual_seed(run.seed))
            progress[member.config].scores[member.run] = RunScore(
                run.repeat, run.fold, run.seed, score.accuracy, score.f1, score.digit_accuracy,
                loss, seconds, run.draw, fitted)
    return [Evaluation(config, protocol, seed, str(device), described, state.params,
                       tuple(state.scores[r] for r in sorted(state.scores)), state.failed,
                       precision, state.stopped_at, cpu_threads(device),
                       _final_state(config, state, len(runs)) if keep_state else None,
                       start or None)
            for config, state, start in zip(configs, progress, starts)]


def _check_resume(configs: Sequence[Config], resume: Sequence[Optional[TrainingState]],
                  runs: int, engine: str, keep_state: bool) -> None:
    """Refuse states that cannot continue these configurations' trainings."""
    if len(resume) != len(configs):
        raise BadValue("resume", f"{len(resume)} states", f"one per configuration "
                       f"({len(configs)}), or None")
    if engine == "sequential" and (keep_state or any(s is not None for s in resume)):
        raise BadValue("engine", engine, "cannot keep or resume training states; use loop "
                       "or vmap")
    for config, state in zip(configs, resume):
        if state is None:
            continue
        if len(state.runs) != runs:
            raise BadValue("resume", f"{len(state.runs)} runs", f"the protocol has {runs}")
        if not 1 <= state.epochs < config.train.epochs:
            raise BadValue("resume", f"{state.epochs} epochs",
                           f"must be fewer than the {config.train.epochs} to train")


def _final_state(config: Config, progress: _Progress, runs: int) -> Optional[TrainingState]:
    """Every run's state at the end, if every run finished its epochs."""
    if progress.finished or len(progress.states) != runs:
        return None
    return TrainingState(config.train.epochs,
                         tuple(progress.states[r] for r in range(runs)))


def _train_group(engine: str, template: torch.nn.Module,
                 weights: list[Mapping[str, torch.Tensor]], group: list[_Member],
                 runs: list[_Run], train_pairs: PairSet, configs: Sequence[Config],
                 generators: list[torch.Generator],
                 callbacks: Sequence[EpochCallback | None], steps: dict[int, int],
                 progress: list[_Progress], start_epoch: int = 0,
                 saved: Sequence[Optional[RunState]] = (), keep_state: bool = False
                 ) -> tuple[list[float], list[torch.nn.Module], Optional[list[RunState]]]:
    """Train one group of runs, each from its ``weights`` on ``template``'s network:
    together as an ensemble, or one model (``sequential``).

    Records in ``progress`` the configurations that diverge or that their callback
    stops. Returns each member's last-epoch loss, the trained models (views of the
    ensemble's members) and, with ``keep_state``, each member's state at the end (to
    continue it later).
    """
    held_out = [runs[m.run].held_out for m in group]
    shared = configs[group[0].config].train
    if engine == "sequential":
        (member,), (start,) = group, weights
        model = copy.deepcopy(template)  # the template is shared: train a copy
        load_weights(model, start)
        config = configs[member.config]
        callback = callbacks[member.config]

        def after_epoch(epoch: int) -> bool:
            if callback is None:
                return False
            step = steps[member.config] + epoch
            if callback(step, accuracy_of(model, held_out[0])):
                progress[member.config].stopped_at = step
                return True
            return False

        outcome = train_model(model, train_pairs.subset(runs[member.run].train_index),
                              config.train, generators[0], after_epoch, config.loss_recipe())
        if outcome.failed:
            progress[member.config].failed = f"run {member.run + 1} diverged: {outcome.failed}"
        return [outcome.final_loss], [model], None

    ensemble = Ensemble.from_weights(template, weights, engine)
    by_config: dict[int, list[int]] = {}
    for index, member in enumerate(group):
        by_config.setdefault(member.config, []).append(index)

    def after_epoch(epoch: int, diverged_now: dict[int, str]) -> list[int]:
        stop: list[int] = []
        for index in sorted(diverged_now):
            state = progress[group[index].config]
            if state.failed is None:  # the first of its runs to diverge names the failure
                state.failed = f"run {group[index].run + 1} diverged: {diverged_now[index]}"
                stop += by_config[group[index].config]
        watched = [c for c in by_config
                   if callbacks[c] is not None and not progress[c].finished]
        if watched:
            models = ensemble.member_views()
            for c in watched:
                accuracy = float(np.mean([accuracy_of(models[i], held_out[i])
                                          for i in by_config[c]]))
                step = steps[c] + epoch
                if callbacks[c](step, accuracy):
                    progress[c].stopped_at = step
                    stop += by_config[c]
        return stop

    outcome = train_ensemble(ensemble, train_pairs, [runs[m.run].train_index for m in group],
                             shared, generators, after_epoch,
                             [configs[m.config].loss_recipe() for m in group],
                             [configs[m.config].train.lr for m in group], start_epoch,
                             [state.optimizer for state in saved] if start_epoch else None)
    states = None
    if keep_state:
        states = [RunState(ensemble.member_weights(i), outcome.optimizer.member_state(i),
                           generators[i].get_state(), outcome.final_losses[i])
                  for i in range(len(group))]
    return outcome.final_losses, ensemble.member_views(), states
