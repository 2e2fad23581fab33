"""Tabular benchmarks: a finished exhaustive grid, replayed instead of trained.

HPO research compares search methods on tables of precomputed results (NAS-Bench-201,
HPOBench, LCBench, YAHPO): every configuration's scores at every budget are known, so a
search that would take an hour runs in seconds and can be repeated over hundreds of
seeds. ``export_table`` writes a complete grid study (``pairsearch grid --curves``, so
that each cell has its per-epoch validation accuracy) to a compact gzipped JSON file;
``Table`` reads it and answers a search's trials from it (``SearchSettings.table``, the
``--table FILE`` flag of every search command): the same strategies, samplers, pruners,
claims and storage writes run as in a real search; only the training is looked up.

What a lookup returns, for a configuration at a budget of b epochs out of the grid's E:

- at b = E: the grid's own per-fold accuracies, digit accuracy and training seconds;
- at b < E: the mean validation accuracy the grid's training reached after b epochs (its
  learning curve) for every fold, and b/E of its training seconds. A halving rung and a
  pruned trial see exactly these numbers in a real run: a training at b epochs with the
  same seeds equals the first b epochs of the grid's (checkpoints, ``evaluation.state``);
- per-epoch reports: the curve, to the pruner, until it stops the trial;
- a configuration that diverged in the grid: its curve up to the epoch it diverged in
  (the epochs before it are results like any other: a pruner may stop it there, a halving
  rung below that epoch scores it), a failure from that epoch on.

Every figure in the file comes from one real training, so a replayed search costs what the
real one would in epochs and seconds of training (each trial's ``train_seconds``), not in
the search's own overhead.
"""

from __future__ import annotations

import datetime
import gzip
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import optuna
from optuna.trial import TrialState

from pairsearch.errors import BadValue, PairsearchError
from pairsearch.evaluation import Config, Evaluation, Protocol, RunScore
from pairsearch.names import Attr
from pairsearch.search.store.queries import crashed, unfinished_cells
from pairsearch.search.store.storage import study_meta

FORMAT = "pairsearch-table/1"


@dataclass(frozen=True)
class Entry:
    """One configuration's results in the grid.

    Attributes:
        params: The first cell of the grid that trained it.
        accuracies: Per-fold accuracy at the full budget (empty when it failed).
        curve: Mean validation accuracy after each epoch (``None``: not recorded); for a
            diverged configuration, after each epoch before the one it diverged in.
        digit_accuracy: Digit accuracy at the full budget, if it has digit heads.
        seconds: Training seconds of the whole K-fold evaluation.
        parameters: Trainable parameters.
        failed: Why the training diverged, else ``None``.
    """

    params: dict[str, Any]
    accuracies: tuple[float, ...]
    curve: Optional[tuple[float, ...]]
    digit_accuracy: Optional[float]
    seconds: float
    parameters: Optional[int]
    failed: Optional[str]


def export_table(study: optuna.Study) -> dict[str, Any]:
    """A complete exhaustive grid study as a table (``Table.save`` writes it).

    Raises:
        PairsearchError: If ``study`` is not a grid study, or not complete.
    """
    meta = study_meta(study)
    if meta.get("strategy") != "grid":
        raise PairsearchError(f"study {study.study_name!r} is a {meta.get('strategy')} study; "
                              "a table is made from an exhaustive grid (pairsearch grid)")
    unfinished = unfinished_cells(study)
    if unfinished is not None:
        raise PairsearchError(f"study {study.study_name!r} has {unfinished[0]} of "
                              f"{unfinished[1]} cells: finish the grid first (run it again)")
    protocol = meta["protocol"]
    entries: dict[str, dict[str, Any]] = {}
    epochs: Optional[int] = None
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        key = attrs.get(Attr.CONFIG_KEY)
        if key is None or key in entries or crashed(trial) or Attr.REUSED_FROM in attrs:
            continue
        if trial.state == TrialState.FAIL and Attr.FAIL_REASON not in attrs:
            continue  # interrupted: not a result
        if trial.state not in (TrialState.COMPLETE, TrialState.FAIL):
            continue
        budget = int(attrs.get(Attr.BUDGET) or json.loads(key).get("epochs"))
        epochs = budget if epochs is None else epochs
        steps = trial.intermediate_values
        curve = [steps[e] for e in range(budget)] if all(e in steps for e in range(budget)) \
            else None
        if trial.state == TrialState.FAIL and steps:  # the epochs before it diverged
            curve = [steps[e] for e in range(len(steps)) if e in steps]
        entries[key] = {"params": dict(trial.params),
                        "accuracies": list(attrs.get(Attr.ACCURACIES) or []),
                        "curve": curve, "digit_accuracy": attrs.get("digit_accuracy_mean"),
                        "seconds": attrs.get("train_seconds") or 0.0,
                        "parameters": attrs.get("params"),
                        "failed": attrs.get(Attr.FAIL_REASON)}
    if not entries:
        raise PairsearchError(f"study {study.study_name!r} holds no results")
    return {"format": FORMAT, "study": study.study_name, "space": meta["space"],
            "protocol": protocol, "epochs": epochs,
            "exported": datetime.date.today().isoformat(), "configurations": entries}


class Table:
    """A tabular benchmark: every configuration of a space, answered without training.

    Args:
        data: What ``export_table`` returns.
        source: Where it was read from (for messages).

    Raises:
        PairsearchError: If ``data`` is not a table.
    """

    def __init__(self, data: dict[str, Any], source: str = "table") -> None:
        if data.get("format") != FORMAT:
            raise PairsearchError(f"{source} is not a pairsearch table (format "
                                  f"{data.get('format')!r}, expected {FORMAT!r})")
        self.source = source
        self.study = data["study"]
        self.space = json.loads(data["space"]) if isinstance(data["space"], str) \
            else data["space"]
        self.protocol: dict[str, Any] = data["protocol"]
        self.epochs = int(data["epochs"])
        self.entries = {key: Entry(e["params"], tuple(e["accuracies"]),
                                   tuple(e["curve"]) if e.get("curve") else None,
                                   e.get("digit_accuracy"), float(e.get("seconds") or 0.0),
                                   e.get("parameters"), e.get("failed"))
                        for key, e in data["configurations"].items()}
        self.curves = all(e.curve is not None for e in self.entries.values()
                          if e.failed is None)

    @classmethod
    def load(cls, path: str | Path) -> "Table":
        """Read a table file (gzipped JSON, or plain JSON).

        Raises:
            PairsearchError: If the file is missing or not a table.
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
            text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
            data = json.loads(text)
        except FileNotFoundError:
            raise PairsearchError(f"no table file {path}") from None
        except (OSError, ValueError, EOFError) as error:
            raise PairsearchError(f"cannot read table {path}: {error}") from None
        if not isinstance(data, dict):
            raise PairsearchError(f"{path} is not a pairsearch table")
        return cls(data, str(path))

    @staticmethod
    def save(data: dict[str, Any], path: str | Path) -> None:
        """Write ``export_table``'s result, gzipped when the name ends in ``.gz``."""
        text = json.dumps(data, separators=(",", ":")).encode()
        Path(path).write_bytes(gzip.compress(text, mtime=0) if str(path).endswith(".gz")
                               else text)

    def best(self) -> tuple[float, list[dict[str, Any]]]:
        """The best full-budget mean accuracy and every configuration's cell reaching it."""
        values = {k: sum(e.accuracies) / len(e.accuracies)
                  for k, e in self.entries.items() if e.failed is None and e.accuracies}
        top = max(values.values())
        return top, [self.entries[k].params for k, v in values.items() if v == top]

    def check(self, settings_meta: dict[str, Any]) -> None:
        """Refuse a protocol other than the table's (the message gives the table's).

        Raises:
            PairsearchError: If a setting that decides the scores differs.
        """
        wanted = {k: v for k, v in self.protocol.items() if k != "epochs"}
        given = {k: v for k, v in settings_meta.items() if k not in ("epochs", "table")}
        for name in sorted(set(wanted) | set(given)):
            if wanted.get(name) != given.get(name):
                raise BadValue(name.replace("_", "-"), given.get(name),
                               f"the table {self.source} was made with {wanted.get(name)!r} "
                               "(its protocol must be the search's)")

    def evaluate(self, config: Config, protocol: Protocol, seed: int,
                 callback=None) -> Evaluation:
        """The grid's results for ``config`` at its budget, as ``evaluation.evaluate``
        would return them (see the module docstring).

        Raises:
            PairsearchError: If the configuration is not in the table, its budget exceeds
                the table's epochs, or a lower budget or a callback needs learning curves
                the table lacks.
        """
        budget = config.train.epochs
        if budget > self.epochs:
            raise BadValue("epochs", budget, f"the table {self.source} holds {self.epochs}")
        full = replace(config, train=replace(config.train, epochs=self.epochs))
        entry = self.entries.get(full.key())
        if entry is None:
            raise PairsearchError(f"configuration {full.flat()} is not in the table "
                                  f"{self.source} (its space: study {self.study!r})")
        needs_curve = budget < self.epochs or callback is not None
        if needs_curve and entry.curve is None and entry.failed is None:
            raise PairsearchError(f"the table {self.source} has no learning curves (export "
                                  "a grid run with --curves): low budgets and pruners need them")
        data = f"table {self.source}"
        # A diverged configuration trains normally for the epochs before the failure.
        sound = len(entry.curve or ()) if entry.failed is not None else budget
        stopped_at, trained = None, budget
        if callback is not None:
            for epoch in range(min(budget, sound)):
                if callback(epoch, entry.curve[epoch]):
                    stopped_at, trained = epoch, epoch + 1
                    break
        if entry.failed is not None and stopped_at is None and budget > sound:
            return Evaluation(config, protocol, seed, "table", data, entry.parameters or 0,
                              (), entry.failed)
        folds = len(entry.accuracies) or self.protocol.get("folds", 1)
        at_full = budget == self.epochs
        accuracies = entry.accuracies if at_full else (entry.curve[budget - 1],) * folds
        seconds = entry.seconds * trained / self.epochs / folds
        runs = tuple(RunScore(0, fold, seed, accuracy, math.nan,
                              entry.digit_accuracy if at_full else None, math.nan, seconds)
                     for fold, accuracy in enumerate(accuracies))
        return Evaluation(config, protocol, seed, "table", data, entry.parameters or 0,
                          runs if stopped_at is None else (), None, "table", stopped_at)

    def evaluate_many(self, configs: Sequence[Config], protocol: Protocol, seed: int,
                      callbacks: Sequence = ()) -> list[Evaluation]:
        """``evaluate`` for each configuration."""
        callbacks = list(callbacks) or [None] * len(configs)
        return [self.evaluate(c, protocol, seed, cb) for c, cb in zip(configs, callbacks)]
