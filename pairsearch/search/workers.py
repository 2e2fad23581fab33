"""What lets several workers and crashes share one study safely.

- ``worker_id()``: this process's identity (``host:pid``), stored on each trial it runs.
- ``enqueue_owned``: queues a cell as a trial already labelled with that identity.
- ``Heartbeat``: records Optuna heartbeats for the running trial from a thread, so
  a worker on any machine that dies (SIGKILL included) leaves a trial that
  ``optuna.storages.fail_stale_trials`` marks FAIL after the grace period.
- ``recover_dead_trials``: at start-up and between trials, fails at once the
  RUNNING trials of dead processes on this host (no need to wait for the grace
  period), and, at most once per heartbeat interval, the stale ones of any host.
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

from pairsearch.search.storage import maybe_storage, trial_id, trial_ids

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
    killed before it starts the trial still leaves a trial ``recover_dead_trials``
    can attribute to it and fail. (The runner relabels a trial popped from another
    worker's queue.) ``labels`` are more user attributes, stored in the same write.
    """
    study.enqueue_trial(dict(cell), user_attrs={**(labels or {}), "worker": worker_id()})


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


def recover_dead_trials(study: optuna.Study,
                        storage: Optional[optuna.storages.BaseStorage] = None) -> int:
    """Fail the RUNNING trials whose worker is gone; returns how many were failed.

    Such trials keep no ``fail_reason`` (they did not fail on their own), so the
    strategies evaluate their cells again. Stale trials (another host's, without a
    heartbeat for the grace period) are looked for at most once per heartbeat interval:
    a trial turns stale only after the grace period, and the look-up (three reads of
    the study) would otherwise be a large part of a short trial's fixed cost.

    Args:
        study: The study.
        storage: Its storage (default: the study's own, ``storage.study_storage``).
    """
    storage = maybe_storage(study, storage)
    failed = 0
    now = datetime.datetime.now()  # Optuna stores naive local times
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker", "")
        host, _, pid = owner.rpartition(":")
        if host == HOST and pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            reason = f"worker {owner} is gone"
        elif not owner and trial.datetime_start is not None and \
                (now - trial.datetime_start).total_seconds() > UNLABELLED_SECONDS:
            reason = f"no worker took it up in {UNLABELLED_SECONDS} s"
        else:
            continue
        try:
            storage.set_trial_user_attr(trial_id(storage, study, trial.number), "crashed",
                                        reason)
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed += 1
        except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            pass  # another worker got there first
    interval = _heartbeat_interval(storage)
    if interval is not None and _stale_check_due(storage, study, interval):
        before = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        failed += len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))) - before
    return failed


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
    """

    def __init__(self, study: optuna.Study, trials: Sequence[int],
                 storage: Optional[optuna.storages.BaseStorage] = None) -> None:
        self._storage = maybe_storage(study, storage)
        self._study = study
        self._numbers = list(trials)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _beat(self, ids: list[int]) -> None:
        for identifier in ids:
            self._storage.record_heartbeat(identifier)

    def __enter__(self) -> "Heartbeat":
        interval = _heartbeat_interval(self._storage)
        if interval is not None:
            def beat() -> None:
                ids: Optional[list[int]] = None
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
