"""What lets several workers and crashes share one study safely.

- ``worker_id()``: this process's identity (``host:pid``), stored on each trial it runs.
- ``enqueue_owned``: queues a cell as a trial already labelled with that identity.
- ``Heartbeat``: records Optuna heartbeats for the running trial from a thread, so
  a worker on any machine that dies (SIGKILL included) leaves a trial that
  ``optuna.storages.fail_stale_trials`` marks FAIL after the grace period.
- ``dead_trials``: the RUNNING trials of dead processes on this host, which the
  driver fails at once (no need to wait for the grace period); ``fail_stale_trials``:
  at most once per heartbeat interval, the stale ones of any host.
- ``StudyLease``: one owner process per study where a strategy needs one (the GA).
- ``StopRequest``: the first Ctrl-C asks the search to stop after the current
  trial; the second interrupts the trial itself.
- ``spawn_workers``: the extra processes of ``--workers N``, each told it is a
  single worker (``worker_argv``), so none starts workers of its own.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from types import FrameType
from typing import Any, Mapping, Optional, Sequence

import optuna
from optuna.trial import TrialState

from pairsearch.errors import StudyOwned
from pairsearch.names import Attr
from pairsearch.search.store.storage import GRACE_SECONDS, maybe_storage, trial_ids

HOST = socket.gethostname()
# A RUNNING trial no worker has labelled for this long was asked for by a worker that died
# before it could label it (labelling takes milliseconds).
UNLABELLED_SECONDS = 600
# When each (storage, study) of this process was last checked for stale trials (monotonic).
_stale_checked: dict[tuple[int, str], float] = {}


def worker_id() -> str:
    """``host:pid`` of this process (computed now: forked workers differ from the parent)."""
    return f"{HOST}:{os.getpid()}"


def enqueue_owned(study: optuna.Study, cell: Mapping[str, Any],
                  labels: Mapping[str, Any] | None = None) -> None:
    """Queue ``cell`` as a trial labelled with this worker, for the next ``study.ask``.

    ``ask`` turns the queued trial RUNNING; with the label already there, a worker
    killed before it starts the trial still leaves a trial ``dead_trials``
    can attribute to it and fail. (The trial evaluator relabels a trial popped from another
    worker's queue.) ``labels`` are more user attributes, stored in the same write.
    """
    study.enqueue_trial(dict(cell), user_attrs={**(labels or {}), Attr.WORKER: worker_id()})


def alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _heartbeat_interval(storage) -> Optional[int]:
    """The storage's heartbeat interval, ``None`` where it has no heartbeat."""
    getter = getattr(storage, "get_heartbeat_interval", None)
    return getter() if getter is not None else None


def dead_trials(study: optuna.Study) -> list[tuple[int, str]]:
    """The RUNNING trials whose worker is gone on this host, or that no worker took up:
    (number, why). The driver fails them (``driver.recover_dead_trials``)."""
    dead = []
    now = datetime.datetime.now()  # Optuna stores naive local times
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get(Attr.WORKER, "")
        host, _, pid = owner.rpartition(":")
        if host == HOST and pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            dead.append((trial.number, f"worker {owner} is gone"))
        elif not owner and trial.datetime_start is not None and \
                (now - trial.datetime_start).total_seconds() > UNLABELLED_SECONDS:
            dead.append((trial.number, f"no worker took it up in {UNLABELLED_SECONDS} s"))
    return dead


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Optuna's ``fail_stale_trials`` (trials of any host without a heartbeat for the grace
    period), at most once per heartbeat interval: a trial turns stale only after the grace
    period, and the look-up (three reads of the study) would otherwise be a large part of
    a short trial's fixed cost. Returns how many it failed."""
    interval = _heartbeat_interval(storage)
    if interval is None or not _stale_check_due(storage, study, interval):
        return 0
    before = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))) - before


def _stale_check_due(storage: optuna.storages.BaseStorage, study: optuna.Study,
                     interval: float) -> bool:
    """Whether ``interval`` seconds have passed since this process last looked for stale
    trials of ``study`` (then the time is noted)."""
    key = (id(storage), study.study_name)
    now = time.monotonic()
    if now - _stale_checked.get(key, float("-inf")) < interval:
        return False
    _stale_checked[key] = now
    return True


class Heartbeat:
    """Context manager recording the trials' heartbeats every interval from a daemon thread.

    The first beat is recorded by the thread too, at once: the training starts meanwhile
    instead of waiting for a write (a commit, an fsync), and leaving the context waits for
    the thread, so no beat lands after the trial is told.

    Args:
        study: The study of the trials.
        trials: The running trials (their numbers).
        storage: The study's storage (default: ``storage.study_storage``).
        ids: The trials' storage ids, where the caller has them (else looked up once).
    """

    def __init__(self, study: optuna.Study, trials: Sequence[int],
                 storage: Optional[optuna.storages.BaseStorage] = None,
                 ids: Optional[Sequence[int]] = None) -> None:
        self._storage = maybe_storage(study, storage)
        self._study = study
        self._numbers = list(trials)
        self._ids = list(ids) if ids is not None else None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _beat(self, ids: list[int]) -> None:
        for identifier in ids:
            self._storage.record_heartbeat(identifier)

    def __enter__(self) -> "Heartbeat":
        interval = _heartbeat_interval(self._storage)
        if interval is not None:
            def beat() -> None:
                ids: Optional[list[int]] = self._ids
                while True:
                    try:
                        ids = ids or trial_ids(self._storage, self._study, self._numbers)
                        self._beat(ids)
                    except Exception:  # a missed beat is retried at the next interval
                        pass
                    if self._stop.wait(interval):
                        return

            self._thread = threading.Thread(target=beat, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class StudyLease:
    """One owner process per study (a study attribute ``KEY``), renewed as it works.

    A study whose strategy keeps state between trials in one process (the genetic
    algorithm breeds each generation from the last) may have one owner at a time; a
    second process is refused while the owner lives (same host: its pid exists; another
    host: it renewed within the grace period).

    Args:
        study: The study.
        key: The study attribute holding the owner.
        what: How the refusal names the study (``genetic study``).
    """

    def __init__(self, study: optuna.Study, key: str, what: str) -> None:
        self.study = study
        self.key = key
        self.what = what

    @staticmethod
    def _alive(owner: Mapping[str, Any]) -> bool:
        host, _, pid = str(owner.get("worker", "")).rpartition(":")
        if host == HOST and pid.isdigit():
            return alive(int(pid))
        return time.time() - float(owner.get("beat", 0)) < GRACE_SECONDS

    def acquire(self) -> None:
        """Own the study, or refuse if a live owner exists.

        Raises:
            StudyOwned: If another live process owns the study.
        """
        me = worker_id()
        owner = self.study.user_attrs.get(self.key)
        if owner and owner.get("worker") != me and self._alive(owner):
            raise StudyOwned(
                f"{self.what} {self.study.study_name!r} is being run by {owner['worker']}: "
                "it has one owner, which breeds each generation from the last; a stopped or "
                "killed run is resumed by running the same command again")
        self.renew()
        time.sleep(0.2)  # two processes starting at once: the last writer wins, the other leaves
        if (self.study.user_attrs.get(self.key) or {}).get("worker") != me:
            raise StudyOwned(f"{self.what} {self.study.study_name!r} was just claimed by "
                             f"{self.study.user_attrs[self.key]['worker']}")

    def renew(self) -> None:
        """Say the owner lives (other processes read the beat)."""
        self.study.set_user_attr(self.key, {"worker": worker_id(), "beat": time.time()})

    def release(self) -> None:
        """Give the study up."""
        self.study.set_user_attr(self.key, None)


class StopRequest:
    """First SIGINT: stop between trials. Second: raise KeyboardInterrupt in the trial."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def install(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\npairsearch: stopping after the current trial (Ctrl-C again to abort it)",
              flush=True)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


NEVER = StopRequest()  # a stop request nobody makes (the default for library calls)


WORKER_OF = "PAIRSEARCH_WORKER_OF"
"""Environment variable naming, in a worker started by ``spawn_workers``, its parent's pid."""


def worker_argv(argv: Sequence[str]) -> list[str]:
    """The command line of an extra worker: the user's, told it is a single worker.

    ``--workers 1`` is appended (the last value of a flag wins) whatever the user wrote,
    so a worker never starts workers of its own; its progress bar is off.
    """
    return [*argv, "--workers", "1", "--no-progress"]


def spawn_workers(argv: Sequence[str], workers: int) -> list[subprocess.Popen]:
    """Start ``workers`` − 1 more processes of the command ``argv`` (after ``pairsearch``).

    Each gets an equal share of the CPU threads (``PAIRSEARCH_THREADS``, also set for
    this process) and, where several GPUs exist, its own GPU.
    """
    import torch

    threads = max(1, (os.cpu_count() or 1) // workers)
    os.environ["PAIRSEARCH_THREADS"] = str(threads)
    gpus = torch.cuda.device_count()
    children = []
    for worker in range(1, workers):
        env = {**os.environ, WORKER_OF: str(os.getpid())}
        if gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(worker % gpus)
        children.append(subprocess.Popen([sys.executable, "-m", "pairsearch",
                                          *worker_argv(argv)], env=env,
                                         stdout=subprocess.DEVNULL))
    return children


def start_workers(argv: Sequence[str], workers: int) -> list[subprocess.Popen]:
    """What every command with ``--workers N`` does first: start the N − 1 other workers
    (``spawn_workers``; none for N = 1) and take this process's share of the CPU threads
    (``PAIRSEARCH_THREADS``, which a worker inherits from the process that started it)."""
    children = spawn_workers(argv, workers) if workers > 1 else []
    if os.environ.get("PAIRSEARCH_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["PAIRSEARCH_THREADS"]))
    return children
