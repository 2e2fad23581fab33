"""Studies in Optuna's own storage: no schema of ours, only study and trial attributes.

Any Optuna storage URL works (default ``sqlite:///studies.db``), so
``optuna.load_study`` and ``optuna-dashboard`` read what pairsearch writes.
A study remembers the space and protocol it was made with (study user
attributes); opening it again with others is an error, not a silent mix.
"""

from __future__ import annotations

import json
import os
import random
import time
import warnings
from typing import Any, Mapping, Optional

import optuna
import sqlalchemy

from pairsearch.errors import PairsearchError
from pairsearch.names import DEFAULT_STORAGE, OBJECTIVE_CV

__all__ = ["DEFAULT_STORAGE", "GRACE_SECONDS", "HEARTBEAT_SECONDS", "load_existing",
           "open_storage", "open_study", "study_meta", "study_names", "study_storage",
           "trial_id"]

# The newest Optuna this module was tested with; ``study_storage`` reads a private attribute,
# so pyproject.toml caps Optuna below the next major version (tests/search/test_storage.py).
OPTUNA_TESTED_MAJOR = 5
# A worker records a heartbeat for its running trial every HEARTBEAT seconds; a RUNNING trial
# without one for GRACE seconds belongs to a dead worker and is failed (then evaluated again).
HEARTBEAT_SECONDS = 20
GRACE_SECONDS = 90
_META = "pairsearch"  # study user attribute holding strategy, space and protocol


def open_storage(url: str, create: bool = True) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``; SQLite gets a long lock timeout for concurrent writers.

    Args:
        url: An SQLAlchemy URL Optuna accepts.
        create: Whether a missing SQLite file may be created (not for read-only commands).

    Raises:
        PairsearchError: If the URL is malformed or the database cannot be opened.
    """
    if "://" not in url:
        raise PairsearchError(f"bad storage URL {url!r}: expected e.g. sqlite:///studies.db")
    if url.startswith("sqlite:///") and not create:
        path = url[len("sqlite:///"):]
        if path.startswith("file:"):  # SQLite URI form: file:PATH?mode=ro&uri=true
            path = path[len("file:"):].split("?", 1)[0]
        if path and path != ":memory:" and not os.path.exists(path):
            raise PairsearchError(f"no database {path} (storage {url}): nothing stored yet")
    sqlite = url.startswith("sqlite")
    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 120}} if sqlite else {}
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                # Optuna marks heartbeats experimental on every storage that asks for them.
                warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                     heartbeat_interval=HEARTBEAT_SECONDS,
                                                     grace_period=GRACE_SECONDS)
            if sqlite:
                _serialise_sqlite_writers(storage.engine)
            return storage
        except Exception as error:  # sqlalchemy raises many types for a bad URL or server
            message = " ".join(str(error).split())
            if attempt + 1 < _CREATE_ATTEMPTS and _lost_creation_race(message):
                # Another process is creating the same new database: once it has, the
                # tables and version row exist and the next attempt just opens them.
                time.sleep(0.2 + random.random() * 0.3)
                continue
            raise PairsearchError(f"cannot open storage {url}: {message[:300]}") from None
    raise AssertionError("unreachable")


# Optuna's RDBStorage creates the tables and inserts its schema version row when it opens a
# new database; two processes doing so at once collide on one of these.
_CREATE_RACE = ("UNIQUE constraint failed", "already exists", "duplicate key",
                "database is locked")
_CREATE_ATTEMPTS = 20


def _lost_creation_race(message: str) -> bool:
    return any(marker in message for marker in _CREATE_RACE)


def _serialise_sqlite_writers(engine: sqlalchemy.engine.Engine) -> None:
    """Make concurrent SQLite writers wait for each other instead of failing.

    pysqlite opens transactions lazily, so two processes that both read and then
    write deadlock on the lock upgrade and one gets "database is locked" at once,
    whatever the timeout. Starting every transaction with BEGIN IMMEDIATE takes the
    write lock up front, so the busy timeout applies (SQLAlchemy's documented
    recipe); WAL lets readers go on while one process writes.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners existed are dropped


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of the studies in ``storage``."""
    return [s.study_name for s in storage.get_all_studies()]


def open_study(storage: optuna.storages.BaseStorage, name: str, meta: Mapping[str, Any],
               sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None,
               metric: str = OBJECTIVE_CV) -> optuna.Study:
    """Create study ``name`` or continue it if it was made with the same ``meta``.

    Args:
        storage: Where the study lives.
        name: Study name.
        meta: What must match to continue: strategy, space and protocol.
        sampler: Optuna sampler for the study.
        pruner: Optuna pruner for the study.
        metric: The name of the value (``study.set_metric_names``), shown by the dashboard,
            ``trials_dataframe`` and plots instead of "Objective 0".

    Raises:
        PairsearchError: If the study exists with a different strategy, space or protocol.
    """
    wanted = json.loads(json.dumps(meta, sort_keys=True))
    if name not in study_names(storage):
        try:
            study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                        pruner=pruner, direction="maximize")
            study.set_user_attr(_META, wanted)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([metric])
            return study
        except optuna.exceptions.DuplicatedStudyError:
            pass  # another worker created it a moment ago: continue it like any other
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    stored = study.user_attrs.get(_META)
    for _ in range(50):  # a worker that just created it may not have written its meta yet
        if stored is not None:
            break
        time.sleep(0.1)
        stored = optuna.load_study(study_name=name, storage=storage).user_attrs.get(_META)
    if stored is None:
        raise PairsearchError(f"study {name!r} exists but was not made by pairsearch")
    for key in ("strategy", "space", "protocol"):
        if stored.get(key) != wanted.get(key):
            raise PairsearchError(
                f"study {name!r} was made with a different {key} "
                f"({_difference(stored.get(key), wanted.get(key))}); "
                "use the same settings to continue it, or another --study name")
    return study


def load_existing(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """An existing study, for reading.

    Raises:
        PairsearchError: If there is no such study; the message lists the existing ones.
    """
    names = study_names(storage)
    if name not in names:
        raise PairsearchError(f"no study {name!r} in this storage; studies: "
                              f"{', '.join(names) or '(none)'}")
    return optuna.load_study(study_name=name, storage=storage)


def study_meta(study: optuna.Study) -> dict[str, Any]:
    """The strategy, space and protocol a study was made with."""
    return dict(study.user_attrs.get(_META, {}))


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes.

    Optuna has no public accessor: ``Study._storage`` has held it from Optuna 1 to 5.
    pairsearch passes its storage along wherever it can; this is for callers that hold
    only a study. pyproject.toml caps Optuna below the next major version, and a test
    checks the attribute on the installed one.
    """
    return study._storage


def trial_id(storage: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> int:
    """The storage's id of trial ``number`` of ``study`` (what storage methods take)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def trial_ids(storage: optuna.storages.BaseStorage, study: optuna.Study,
              numbers: list[int]) -> list[int]:
    """``trial_id`` of several trials, with one study look-up."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return [storage.get_trial_id_from_study_id_trial_number(study_id, n) for n in numbers]


def maybe_storage(study: optuna.Study,
                  storage: Optional[optuna.storages.BaseStorage]) -> optuna.storages.BaseStorage:
    """``storage`` when the caller has it, else the study's own (``study_storage``)."""
    return storage if storage is not None else study_storage(study)


def _difference(stored: Any, wanted: Any) -> str:
    """``"epochs 2 stored, 3 now"`` for dictionaries; a short form otherwise."""
    if isinstance(stored, str) and isinstance(wanted, str) and stored.startswith("{"):
        stored, wanted = json.loads(stored), json.loads(wanted)
    if isinstance(stored, dict) and isinstance(wanted, dict):
        keys = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        return ", ".join(f"{k} {_short(stored.get(k))} stored, {_short(wanted.get(k))} now"
                         for k in keys)
    return f"{_short(stored)} stored, {_short(wanted)} now"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
