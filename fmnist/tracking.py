"""The one module that talks to MLflow. Everything else calls these functions.

Tracking store: whatever ``MLFLOW_TRACKING_URI`` says, else MLflow's default (``sqlite:///mlflow.db``).
Experiment: the run that ``mlflow run`` created (``MLFLOW_RUN_ID``), else ``MLFLOW_EXPERIMENT_NAME`` /
``MLFLOW_EXPERIMENT_ID``, else ``fmnist``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlparse

import mlflow
from mlflow.tracking import MlflowClient

from .liveness import health_problem, pid_alive

DEFAULT_EXPERIMENT = "fmnist"
TAG_PREFIX = "fmnist."
CACHE_KEY_TAG = "fmnist.cache_key"
ARTIFACT_SHA_TAG = "fmnist.artifact_sha256"
ERROR_TAG = "fmnist.error"
STEP_TAG = "fmnist.step"
PARENT_TAG = "mlflow.parentRunId"

# MLflow truncates nothing for us: values past this are rejected by the store.
_MAX_PARAM = 6000


def _client() -> MlflowClient:
    return MlflowClient()


def tracking_uri() -> str:
    """The store's URI, with a relative sqlite path made absolute (so child processes find it)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    return uri


def active_experiment_name() -> str | None:
    """Name of the active run's experiment (e.g. the one ``mlflow run --experiment-name`` chose)."""
    r = mlflow.active_run()
    return _client().get_experiment(r.info.experiment_id).name if r else None


def check_store() -> None:
    """Fail fast, with one line, when an HTTP tracking server is down (MLflow itself retries for minutes)."""
    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    why = health_problem(uri, timeout=5)
    if why is None:
        return
    from .errors import FmnistError

    raise FmnistError(
        f"tracking server {uri} is not reachable ({why}); start it (make server) or unset "
        f"MLFLOW_TRACKING_URI to use the local sqlite:///mlflow.db; nothing was computed"
    )


def reap_dead_runs() -> list[str]:
    """Mark KILLED the RUNNING runs whose process on this host is gone (SIGKILL, OOM, power loss)."""
    import socket

    host = socket.gethostname()
    try:
        stale = mlflow.search_runs(
            search_all_experiments=True, output_format="list", max_results=200,
            filter_string=f"attributes.status = 'RUNNING' and tags.`fmnist.host` = '{host}'",
        )
    except Exception:  # reaping is housekeeping: never fail a command over it
        return []
    reaped = []
    for r in stale:
        pid = r.data.tags.get("fmnist.pid", "")
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            _client().set_tag(r.info.run_id, ERROR_TAG, f"process {pid} died without ending the run; marked KILLED by a later command")
            _client().set_terminated(r.info.run_id, "KILLED")
            reaped.append(r.info.run_id)
    return reaped


def _ensure_experiment() -> None:
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return  # mlflow reads it itself
    # Not left to mlflow's own MLFLOW_EXPERIMENT_NAME lookup: it fails when another process creates the
    # experiment at the same moment (RESOURCE_ALREADY_EXISTS); see create_experiment_once below.
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    create_experiment_once(name)
    mlflow.set_experiment(name)


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def one_line(err: BaseException) -> str:
    msg = str(err).strip().splitlines()
    return f"{type(err).__name__}: {msg[0] if msg else ''}"[:5000]


@contextmanager
def run(name: str, *, step: str, tags: dict[str, Any] | None = None) -> Iterator[str]:
    """Open a run and yield its id.

    Resumes the run ``mlflow run`` created (``MLFLOW_RUN_ID``); nests under the active run if any;
    else starts a new run. An exception ends it FAILED with the message in the ``fmnist.error`` tag;
    Ctrl-C ends it KILLED. Never leaves it RUNNING.
    """
    import socket

    from . import __version__

    active = mlflow.active_run()
    if active is None:
        check_store()
        reap_dead_runs()
    if active is None and os.environ.get("MLFLOW_RUN_ID"):
        r = mlflow.start_run()
        mlflow.set_tag("mlflow.runName", name)
    else:
        if active is None:
            _ensure_experiment()
        r = mlflow.start_run(run_name=name, nested=active is not None)
    all_tags = {STEP_TAG: step, "fmnist.version": __version__, "fmnist.pid": os.getpid(),
                "fmnist.host": socket.gethostname()}
    commit = _git_commit()
    if commit:
        all_tags["fmnist.git_commit"] = commit
    all_tags.update({k: str(v) for k, v in (tags or {}).items()})
    mlflow.set_tags(all_tags)
    run_id = r.info.run_id
    try:
        yield run_id
    except KeyboardInterrupt:
        _end(run_id, "KILLED", "interrupted (KeyboardInterrupt)")
        raise
    except BaseException as e:  # SystemExit too: a run must never stay RUNNING
        _end(run_id, "FAILED", one_line(e))
        raise
    else:
        _end(run_id, "FINISHED", None)


def _end(run_id: str, status: str, error: str | None) -> None:
    try:
        if error:
            _client().set_tag(run_id, ERROR_TAG, error)
    finally:
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status)
        else:
            _client().set_terminated(run_id, status)


def fail_run(run_id: str, message: str) -> None:
    """Mark a run (e.g. one ``mlflow run`` created before our code could parse its params) FAILED."""
    c = _client()
    c.set_tag(run_id, ERROR_TAG, message[:5000])
    c.set_terminated(run_id, "FAILED")


def active_run_id() -> str | None:
    r = mlflow.active_run()
    return r.info.run_id if r else None


# ------------------------------------------------------------------------------------------ logging


def log_params(params: dict[str, Any]) -> None:
    """Log params to the active run. A key already logged with the same value (``mlflow run`` logs every
    ``-P``) is skipped; with another value (``features=all`` resolved to the list it ran, ``epochs=0``
    to the profile's) the resolved value goes in ``<key>_used``: MLflow forbids changing a param."""
    clean = {k: ("" if v is None else str(v))[:_MAX_PARAM] for k, v in params.items()}
    run = mlflow.active_run()
    done = _client().get_run(run.info.run_id).data.params if run else {}
    out = {}
    for k, v in clean.items():
        if k not in done:
            out[k] = v
        elif not _same_param(done[k], v):
            out[f"{k}_used"] = v
    if out:
        mlflow.log_params(out)


def _same_param(a: str, b: str) -> bool:
    """'1' == '1.0', 'true' == 'True': the CLI's parsed value against the string given to ``mlflow run``."""
    if a == b or a.lower() == b.lower():
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def set_tags(tags: dict[str, Any]) -> None:
    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_artifact(path: str | os.PathLike, artifact_path: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_figure(fig, artifact_file: str) -> None:
    """Log a matplotlib figure as a PNG (or whatever the file's suffix says)."""
    mlflow.log_figure(fig, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_dict(data: dict, artifact_file: str) -> None:
    mlflow.log_dict(data, artifact_file)


def log_table(df, artifact_file: str) -> None:
    """A pandas DataFrame as CSV (readable in the UI's artifact view) or JSON by suffix."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / Path(artifact_file).name
        if p.suffix == ".json":
            p.write_text(df.to_json(orient="records", indent=1))
        else:
            df.to_csv(p, index=False)
        parent = str(Path(artifact_file).parent)
        mlflow.log_artifact(str(p), artifact_path=None if parent == "." else parent)


def log_numpy_input(features, targets, *, name: str, digest: str, source: str, context: str) -> None:
    """Record a dataset the run used (``mlflow.log_input``) under our own stable digest."""
    from mlflow.data.dataset_source_registry import get_registered_sources
    from mlflow.data.numpy_dataset import from_numpy

    # Pick the local source class ourselves: resolving a path string warns that two classes match.
    local = next(s for s in get_registered_sources() if s.__name__ == "LocalArtifactDatasetSource")
    src = local(str(Path(source).resolve())) if source and Path(source).exists() else local("synthetic")
    ds = from_numpy(features=features, targets=targets, source=src, name=name, digest=digest[:36])
    # Two processes logging the same dataset at once race on its row: retry, the second then links to it.
    retry_on_conflict(lambda: mlflow.log_input(ds, context=context))


def pinned_requirements(*packages: str) -> list[str]:
    """``pkg==installed version`` for the model's environment. Passing these to ``log_model`` skips
    MLflow's inference of them: a subprocess that re-imports the model's libraries, ~10 s a model."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for p in ("mlflow", "numpy", "cloudpickle", *packages):
        try:
            out.append(f"{p}=={version(p)}")
        except PackageNotFoundError:
            continue
    return out


def log_sklearn_model(model, *, name: str, input_example, trusted_types: list[str] | None = None) -> None:
    """A fitted scikit-learn model with signature. ``trusted_types``: types skops (MLflow's format) refuses
    by default, e.g. tree nodes; they go into the MLmodel file, so ``mlflow.sklearn.load_model`` just works."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, model.predict(input_example))
    mlflow.sklearn.log_model(model, name=name, signature=signature, input_example=input_example,
                             pip_requirements=pinned_requirements("scikit-learn", "scipy", "skops"),
                             skops_trusted_types=list(trusted_types or []) or None)


def log_pytorch_model(model, *, name: str, input_example) -> None:
    """``input_example``: a numpy array the model accepts (the signature is inferred from it)."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    model = model.cpu().eval()
    with torch.inference_mode():
        out = model(torch.as_tensor(input_example)).numpy()
    signature = infer_signature(input_example, out)
    mlflow.pytorch.log_model(model, name=name, signature=signature, input_example=input_example,
                             pip_requirements=pinned_requirements("torch", "torchvision"))


# ------------------------------------------------------------------------------------------- cache


def find_cached_run(key: str) -> str | None:
    """The newest FINISHED run carrying this cache key, in any experiment; None if there is none."""
    runs = _tagged_runs(CACHE_KEY_TAG, key, "= 'FINISHED'", max_results=1)
    return runs[0] if runs else None


def _tagged_runs(tag: str, value: str, status: str, max_results: int) -> list[str]:
    """Ids of runs in any experiment with ``tags.<tag> = value`` and a status clause, newest first."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{tag}` = '{value}' and attributes.status {status}",
        order_by=["attributes.start_time DESC"],
        max_results=max_results,
        output_format="list",
    )
    return [r.info.run_id for r in runs]


def get_run_info(run_id: str) -> dict[str, Any]:
    r = _client().get_run(run_id)
    return {
        "run_id": run_id,
        "status": r.info.status,
        "experiment_id": r.info.experiment_id,
        "params": dict(r.data.params),
        "metrics": dict(r.data.metrics),
        "tags": dict(r.data.tags),
        "artifact_uri": r.info.artifact_uri,
    }


def artifact_local_path(run_id: str, artifact: str, dst: str | os.PathLike | None = None) -> Path:
    """A local path to a run's artifact: read in place for a local store, else downloaded to ``dst``."""
    uri = _client().get_run(run_id).info.artifact_uri
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        p = Path(unquote(parsed.path)) / artifact
        if p.exists():
            return p
    dst = dst or tempfile.mkdtemp(prefix="fmnist-artifact-")
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=str(dst)))


# ------------------------------------------------------------------------------------------- query


def search_runs(filter_string: str = "", experiment_names: list[str] | None = None):
    """Runs as a pandas DataFrame (params.*, metrics.*, tags.* columns), newest first."""
    names = experiment_names or [os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT]
    existing = [n for n in names if mlflow.get_experiment_by_name(n) is not None]
    if not existing:
        import pandas as pd

        return pd.DataFrame()
    return mlflow.search_runs(experiment_names=existing, filter_string=filter_string,
                              order_by=["attributes.start_time DESC"])



def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of a metric, in step order."""
    return sorted((m.step, m.value) for m in _client().get_metric_history(run_id, key))


# ------------------------------------------------------------------------------------------ resume


@contextmanager
def reopen_run(run_id: str) -> Iterator[str]:
    """Continue an existing (unfinished) run by id: status back to RUNNING, ended like ``run()``.

    Nests under the active run if there is one; ``MLFLOW_RUN_ID`` is ignored (``run_id`` wins).
    """
    import socket

    if mlflow.active_run() is None:
        check_store()
    r = mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)
    # This process owns the run now: reap_dead_runs must look at our pid, not the dead one's.
    mlflow.set_tags({"fmnist.pid": os.getpid(), "fmnist.host": socket.gethostname()})
    try:
        yield r.info.run_id
    except KeyboardInterrupt:
        _end(run_id, "KILLED", "interrupted (KeyboardInterrupt)")
        raise
    except BaseException as e:
        _end(run_id, "FAILED", one_line(e))
        raise
    else:
        if ERROR_TAG in _client().get_run(run_id).data.tags:  # the interruption's error is history now
            _client().delete_tag(run_id, ERROR_TAG)
        _end(run_id, "FINISHED", None)


def find_unfinished_runs(tag: str, value: str) -> list[str]:
    """Ids of runs (any experiment) with ``tags.<tag> = value`` that did not finish, newest first."""
    return _tagged_runs(tag, value, "!= 'FINISHED'", max_results=20)


def set_run_tags(run_id: str, tags: dict[str, Any]) -> None:
    """Tags on a run that is not the active one (e.g. the run ``mlflow run`` created for a resume)."""
    c = _client()
    for k, v in tags.items():
        c.set_tag(run_id, k, str(v))


def run_exists(run_id: str) -> bool:
    try:
        _client().get_run(run_id)
    except Exception:  # MlflowException (not found) or a malformed id
        return False
    return True



# ------------------------------------------------------------------------------ concurrent sqlite

# Seconds a sqlite writer waits for another process's write lock before "database is locked".
SQLITE_BUSY_TIMEOUT = 60


def _sqlite_lock_path(store_uri: str) -> Path:
    import hashlib

    db = store_uri.split("?", 1)[0].removeprefix("sqlite:///")  # sqlite:///rel.db, sqlite:////abs.db
    db = str(Path(db).resolve()) if db and db != store_uri else ":memory:"
    return Path(tempfile.gettempdir()) / f"fmnist-sqlite-{hashlib.sha256(db.encode()).hexdigest()[:16]}.lock"


def _with_busy_timeout(store_uri: str) -> str:
    # pysqlite's `timeout` URL parameter: wait for a competing writer instead of failing at once (5 s default).
    if "timeout=" in store_uri:
        return store_uri
    return f"{store_uri}{'&' if '?' in store_uri else '?'}timeout={SQLITE_BUSY_TIMEOUT}"


def _serialized(builder):
    """Wrap an MLflow sqlite store builder: a per-database file lock around building the store, and a busy timeout.

    Building the store creates or migrates the schema of a new ``mlflow.db``; processes starting at once
    would all migrate it and fail ("table ... already exists").
    """
    import fcntl

    def build(store_uri, *args, **kwargs):
        with open(_sqlite_lock_path(store_uri), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                return builder(_with_busy_timeout(store_uri), *args, **kwargs)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    build.__wrapped__ = builder
    return build


def _install_sqlite_guard() -> None:
    """Register the wrapped sqlite builders with MLflow's tracking and model-registry store registries."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    tracking_utils._register("sqlite", _serialized(tracking_utils._get_sqlalchemy_store))
    registry_utils._get_store_registry().register("sqlite", _serialized(registry_utils._get_sqlalchemy_store))


_install_sqlite_guard()


def create_experiment_once(name: str) -> None:
    """Create the experiment unless it exists; losing the race to another process that creates it is fine."""
    from mlflow.exceptions import MlflowException

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
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            return fn()
        except MlflowException as e:
            if attempt == attempts - 1 or not any(m in str(e) for m in _CONFLICT_MARKERS):
                raise
            time.sleep(delay * (attempt + 1))
