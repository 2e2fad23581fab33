"""Studies in Optuna's own storage: no schema of ours, only study and trial attributes.

Any Optuna RDB storage URL works (default ``sqlite:///studies.db``), and so does
Optuna's JournalStorage on a file, written ``journal:///FILE`` (``open_storage``), so
``optuna.load_study`` and ``optuna-dashboard`` read what pairsearch writes.
A study remembers the space and protocol it was made with (study user
attributes); opening it again with others is an error, not a silent mix.
A trial's attributes are written together (``set_trial_user_attrs``): one transaction
or one journal append instead of one per attribute.
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
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from pairsearch.errors import PairsearchError
from pairsearch.names import DEFAULT_STORAGE, OBJECTIVE_CV

# The Optuna internals the one-write paths use (Optuna 4 and 5); any missing one means
# the per-attribute path.
try:
    from optuna.storages._cached_storage import _CachedStorage
    from optuna.storages._rdb import models as _rdb_models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.storages.journal._storage import JournalOperation
except ImportError:  # pragma: no cover - a future Optuna
    _CachedStorage = _rdb_models = _create_scoped_session = JournalOperation = None

__all__ = ["DEFAULT_STORAGE", "GRACE_SECONDS", "HEARTBEAT_SECONDS", "JOURNAL_PREFIX",
           "load_existing", "one_write", "open_storage", "open_study",
           "set_trial_user_attrs", "storage_file", "study_meta", "study_names", "study_storage",
           "trial_id"]

# The newest Optuna this module was tested with; ``study_storage`` reads a private attribute,
# so pyproject.toml caps Optuna below the next major version (tests/search/test_storage.py).
OPTUNA_TESTED_MAJOR = 5
# A worker records a heartbeat for its running trial every HEARTBEAT seconds; a RUNNING trial
# without one for GRACE seconds belongs to a dead worker and is failed (then evaluated again).
HEARTBEAT_SECONDS = 20
GRACE_SECONDS = 90
_META = "pairsearch"  # study user attribute holding strategy, space and protocol
JOURNAL_PREFIX = "journal:///"
"""``journal:///FILE`` opens Optuna's JournalStorage on FILE, written as after SQLite's
``sqlite:///``: ``journal:///studies.log`` is relative to the working directory,
``journal:////abs/dir/studies.log`` is absolute."""


def open_storage(url: str, create: bool = True) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``; SQLite gets a long lock timeout for concurrent writers.

    Args:
        url: An SQLAlchemy URL Optuna accepts, or ``journal:///FILE`` for Optuna's
            JournalStorage on a file (``JOURNAL_PREFIX``).
        create: Whether a missing SQLite or journal file may be created (not for
            read-only commands).

    Raises:
        PairsearchError: If the URL is malformed or the database cannot be opened.
    """
    if url.startswith("journal:"):
        return _open_journal(url, create)
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


_SQLITE_HEADER = b"SQLite format 3\x00"


def journal_path(url: str) -> str:
    """The file of a ``journal:///FILE`` URL.

    Raises:
        PairsearchError: If ``url`` is not of that form (no file, a host, a query).
    """
    path = url[len(JOURNAL_PREFIX):] if url.startswith(JOURNAL_PREFIX) else ""
    if not path or "?" in path or path.endswith("/"):
        raise PairsearchError(f"bad storage URL {url!r}: expected journal:///FILE "
                              "(relative) or journal:////ABSOLUTE/FILE")
    return path


def _open_journal(url: str, create: bool) -> JournalStorage:
    """Optuna's JournalStorage on the file of ``url``, locked as optuna-dashboard locks it.

    Raises:
        PairsearchError: If the URL is malformed, the file is missing (``create`` off),
            cannot be created, or is not a journal.
    """
    path = journal_path(url)
    if not create and not os.path.exists(path):
        raise PairsearchError(f"no journal file {path} (storage {url}): nothing stored yet")
    if os.path.isfile(path):
        with open(path, "rb") as file:
            if file.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER:  # appending would corrupt it
                raise PairsearchError(f"cannot open storage {url}: {path} is an SQLite "
                                      f"database; use sqlite:///{path}")
    try:
        # optuna-dashboard opens a journal file with the open lock on Windows and the
        # default (symlink) lock elsewhere; writers sharing one file must agree on it.
        lock = JournalFileOpenLock(path) if os.name == "nt" else None
        return JournalStorage(JournalFileBackend(path, lock_obj=lock))
    except Exception as error:  # OSError, or a file that is not a journal (decode errors)
        message = " ".join(str(error).split()) or type(error).__name__
        raise PairsearchError(f"cannot open storage {url}: {message[:300]}") from None


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


def set_trial_user_attrs(storage: optuna.storages.BaseStorage, trial_id: int,
                         attrs: Mapping[str, Any]) -> None:
    """Write several user attributes of one trial, in one write where the storage allows.

    Optuna's public API writes one attribute per call, and each call is its own
    transaction (RDB) or its own locked, fsynced append (journal): a trial's ~17
    attributes cost ~17 of them. ``one_write`` says where this writes them all at once
    instead: one transaction that checks the trial once and inserts the rows Optuna's
    schema holds (RDB), or one append of the lines ``set_trial_user_attr`` would write
    (journal). Elsewhere, or if a newer Optuna moved those internals, it writes them one
    by one, with the same result. tests/search/test_trial_writes.py checks the
    installed Optuna.

    Args:
        storage: The storage (an ``RDBStorage``, also wrapped in Optuna's cache, a
            ``JournalStorage``, or any other).
        trial_id: The storage's id of the trial (``trial_id``).
        attrs: Attribute names and JSON-serialisable values.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: If the trial is already finished
            (nothing is written then).
        KeyError: If there is no such trial.
    """
    if not attrs:
        return
    backend = _unwrap(storage)
    if isinstance(backend, optuna.storages.RDBStorage) and _rdb_one_write(backend):
        try:
            _rdb_user_attrs(backend, trial_id, attrs)
            return
        except sqlalchemy.exc.IntegrityError:
            pass  # another process inserted one of the keys meanwhile: Optuna's upserts
    elif isinstance(backend, JournalStorage) and _journal_one_write(backend):
        _journal_user_attrs(backend, trial_id, attrs)
        return
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


def one_write(storage: optuna.storages.BaseStorage) -> bool:
    """Whether ``set_trial_user_attrs`` writes all of a trial's attributes in one write."""
    backend = _unwrap(storage)
    return (isinstance(backend, optuna.storages.RDBStorage) and _rdb_one_write(backend)) or \
        (isinstance(backend, JournalStorage) and _journal_one_write(backend))


def storage_file(storage: optuna.storages.BaseStorage) -> Optional[str]:
    """The file an SQLite or journal storage lives in; ``None`` for a server or memory."""
    backend = _unwrap(storage)
    if isinstance(backend, JournalStorage):
        path = getattr(getattr(backend, "_backend", None), "_file_path", None)
        return str(path) if path else None
    url = getattr(backend, "url", None)
    if not isinstance(url, str) or not url.startswith("sqlite"):
        return None
    database = sqlalchemy.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _unwrap(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """The RDBStorage inside Optuna's ``_CachedStorage`` (what a study holds), else itself."""
    if _CachedStorage is not None and isinstance(storage, _CachedStorage):
        return getattr(storage, "_backend", storage)
    return storage


def _rdb_one_write(storage: optuna.storages.RDBStorage) -> bool:
    if _create_scoped_session is None or not hasattr(storage, "scoped_session"):
        return False
    table = getattr(getattr(_rdb_models, "TrialUserAttributeModel", None), "__table__", None)
    return (table is not None and {"trial_id", "key", "value_json"} <= set(table.c.keys())
            and callable(getattr(getattr(_rdb_models, "TrialModel", None),
                                 "find_or_raise_by_id", None)))


def _rdb_user_attrs(storage: optuna.storages.RDBStorage, trial_id: int,
                    attrs: Mapping[str, Any]) -> None:
    """One transaction: the trial checked once, its new keys inserted in one statement.

    Optuna's ``set_trial_user_attr`` checks the trial and upserts one row per call; the
    rows are the same here (``value_json`` is the value's JSON), written as plain inserts
    and updates that every database SQLAlchemy supports.

    Raises:
        sqlalchemy.exc.IntegrityError: If another process inserted one of the keys
            between the look-up and the insert (nothing is written then).
    """
    table = _rdb_models.TrialUserAttributeModel.__table__
    with _create_scoped_session(storage.scoped_session) as session:
        trial = _rdb_models.TrialModel.find_or_raise_by_id(trial_id, session)
        storage.check_trial_is_updatable(trial_id, trial.state)
        stored = set(session.scalars(sqlalchemy.select(table.c.key).where(
            table.c.trial_id == trial_id, table.c.key.in_(list(attrs)))))
        rows = [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                for key, value in attrs.items() if key not in stored]
        if rows:
            session.execute(table.insert(), rows)
        for key in stored:
            session.execute(table.update()
                            .where(table.c.trial_id == trial_id, table.c.key == key)
                            .values(value_json=json.dumps(attrs[key])))


def _journal_one_write(storage: JournalStorage) -> bool:
    return (JournalOperation is not None
            and hasattr(JournalOperation, "SET_TRIAL_USER_ATTR")
            and callable(getattr(getattr(storage, "_backend", None), "append_logs", None))
            and callable(getattr(storage, "_sync_with_backend", None))
            and hasattr(storage, "_thread_lock")
            and hasattr(getattr(storage, "_replay_result", None), "worker_id"))


def _journal_user_attrs(storage: JournalStorage, trial_id: int,
                        attrs: Mapping[str, Any]) -> None:
    """Append the lines ``JournalStorage.set_trial_user_attr`` would, under one file lock.

    Readers (Optuna's replay) take one attribute per line, so the lines stay one per
    attribute; what is saved is the lock, fsync and re-read of every call.
    """
    trial = storage.get_trial(trial_id)  # KeyError if there is none
    if trial.state.is_finished():  # as set_trial_user_attr would, before writing anything
        raise optuna.exceptions.UpdateFinishedTrialError(
            f"trial #{trial.number} has already finished and cannot be updated")
    with storage._thread_lock:
        worker = storage._replay_result.worker_id
        storage._backend.append_logs([
            {"op_code": JournalOperation.SET_TRIAL_USER_ATTR, "worker_id": worker,
             "trial_id": trial_id, "user_attr": {key: value}} for key, value in attrs.items()])
        # Replaying our own lines raises once per line if another process finished the
        # trial in the meantime: read them all, then raise once, as one call would.
        error: Optional[Exception] = None
        while True:
            try:
                storage._sync_with_backend()
                break
            except optuna.exceptions.UpdateFinishedTrialError as finished:
                error = error or finished
    if error is not None:
        raise error


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
