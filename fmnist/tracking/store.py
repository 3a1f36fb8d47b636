"""The tracking store: its URI, making a sqlite store safe for concurrent processes, race-safe writes.

Every other module of this package reaches the store through ``prepare_store()`` / ``_client()``.
"""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..tags import ARTIFACT_SHA_TAG, CACHE_KEY_TAG, ERROR_TAG, STEP_TAG, TAG_PREFIX

DEFAULT_EXPERIMENT = "fmnist"
PARENT_TAG = "mlflow.parentRunId"

# Seconds a sqlite writer waits for another process's write lock before "database is locked".
SQLITE_BUSY_TIMEOUT = 60

# URIs whose store this process has built (under the lock); prepare_store is a no-op for them.
_prepared: set[str] = set()


def tracking_uri() -> str:
    """The store's URI, with a relative sqlite path made absolute (so child processes find it)."""
    base, sep, query = mlflow.get_tracking_uri().partition("?")
    if base.startswith("sqlite:///") and not base.startswith("sqlite:////"):
        base = "sqlite:///" + str(Path(unquote(base[len("sqlite:///"):])).resolve())
    return base + sep + query


def prepare_store() -> str:
    """Make the current store safe for concurrent processes, once per URI; returns the URI in use.

    sqlite: a busy timeout, so concurrent writers wait instead of failing with "database is locked", and the
    store built under a per-database file lock: processes starting at once on a new ``mlflow.db`` would all
    create its schema and fail ("table ... already exists").
    """
    given = mlflow.get_tracking_uri()
    if not given.startswith("sqlite:"):
        return given
    # Absolute: MLflow caches a store per URI string, so a relative one would keep the first cwd's file.
    uri = tracking_uri()
    if "timeout=" not in uri:
        # pysqlite's `timeout` connect argument (default 5 s), passed on by SQLAlchemy from the URL query.
        uri = f"{uri}{'&' if '?' in uri else '?'}timeout={SQLITE_BUSY_TIMEOUT}"
    if uri != given:
        mlflow.set_tracking_uri(uri)  # also exported as MLFLOW_TRACKING_URI to child processes
    if uri not in _prepared:
        with open(_sqlite_lock_path(uri), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when f closes
            # MLflow caches the store per URI: this builds it (creating/migrating the schema) inside the lock.
            MlflowClient(uri).search_experiments(max_results=1)
        _prepared.add(uri)
    return uri


def _sqlite_lock_path(store_uri: str) -> Path:
    """A lock file per database file, however its URI spells the path (relative, query string)."""
    base = store_uri.split("?", 1)[0]
    db = unquote(base[len("sqlite:///"):]) if base.startswith("sqlite:///") else ""
    db = str(Path(db).resolve()) if db and db != ":memory:" else ":memory:"
    return Path(tempfile.gettempdir()) / f"fmnist-sqlite-{hashlib.sha256(db.encode()).hexdigest()[:16]}.lock"


def _client() -> MlflowClient:
    prepare_store()
    return MlflowClient()


def create_experiment_once(name: str) -> None:
    """Create the experiment unless it exists; losing the race to another process that creates it is fine."""
    client = _client()
    if client.get_experiment_by_name(name) is not None:
        return
    try:
        client.create_experiment(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


# Messages of a write that lost a race to an identical concurrent write (PostgreSQL, sqlite, MySQL).
_CONFLICT_MARKERS = ("UniqueViolation", "duplicate key value", "UNIQUE constraint failed", "Duplicate entry")


def retry_on_conflict(fn, attempts: int = 5, delay: float = 0.2):
    """Call ``fn``; retry when the store rejected it because a concurrent identical write got there first.

    MLflow's "get or create" writes (e.g. ``log_input``'s dataset row) are not atomic across processes.
    """
    for attempt in range(attempts):
        try:
            return fn()
        except MlflowException as e:
            if attempt == attempts - 1 or not any(m in str(e) for m in _CONFLICT_MARKERS):
                raise
            time.sleep(delay * (attempt + 1))
