"""What lets several workers and crashes share one study safely.

- ``worker_id()``: this process's identity (``host:pid``), stored on each trial it runs.
- ``enqueue_owned``: queues a cell as a trial already labelled with that identity.
- ``Heartbeat``: records Optuna heartbeats for the running trial from a thread, so
  a worker on any machine that dies (SIGKILL included) leaves a trial that
  ``optuna.storages.fail_stale_trials`` marks FAIL after the grace period.
- ``recover_dead_trials``: at start-up and between trials, fails at once the
  RUNNING trials of dead processes on this host (no need to wait for the grace
  period), and the stale ones of any host.
- ``StopRequest``: the first Ctrl-C asks the search to stop after the current
  trial; the second interrupts the trial itself.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any, Mapping, Optional

import optuna
from optuna.trial import TrialState

HOST = socket.gethostname()
# A RUNNING trial no worker has labelled for this long was asked for by a worker that died
# before it could label it (labelling takes milliseconds).
UNLABELLED_SECONDS = 600


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


def recover_dead_trials(study: optuna.Study) -> int:
    """Fail the RUNNING trials whose worker is gone; returns how many were failed.

    Such trials keep no ``fail_reason`` (they did not fail on their own), so the
    strategies evaluate their cells again.
    """
    storage = study._storage
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
            storage.set_trial_user_attr(trial._trial_id, "crashed", reason)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            failed += 1
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            pass  # another worker got there first
    if _heartbeat_interval(storage) is not None:
        before = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
        optuna.storages.fail_stale_trials(study)
        failed += len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))) - before
    return failed


class Heartbeat:
    """Context manager recording the trial's heartbeat every interval from a daemon thread."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        self._storage = study._storage
        self._trial_id = trial._trial_id
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "Heartbeat":
        interval = _heartbeat_interval(self._storage)
        if interval is not None:
            self._storage.record_heartbeat(self._trial_id)

            def beat() -> None:
                while not self._stop.wait(interval):
                    try:
                        self._storage.record_heartbeat(self._trial_id)
                    except Exception:  # a missed beat is retried at the next interval
                        pass

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
