"""Opening and ending runs: ``run()``, ``reopen_run()``, marking runs FAILED/KILLED, reaping dead ones.

Tracking store: whatever ``MLFLOW_TRACKING_URI`` says, else MLflow's default (``sqlite:///mlflow.db``).
Experiment: the run that ``mlflow run`` created (``MLFLOW_RUN_ID``), else ``MLFLOW_EXPERIMENT_NAME`` /
``MLFLOW_EXPERIMENT_ID``, else ``fmnist``; a child of ``parent_run_id`` goes in its parent's experiment.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import mlflow

from .. import __version__
from ..errors import FmnistError, ParamError
from ..liveness import health_problem, http_status, pid_alive
from . import accounts
from .queries import child_runs
from .store import DEFAULT_EXPERIMENT, ERROR_TAG, STEP_TAG, _client, create_experiment_once, prepare_store
from ..tags import EXECUTOR_TAG, GIT_COMMIT_TAG, HOST_TAG, NODE_ID_TAG, PID_TAG, VERSION_TAG

# Every run logs MLflow's system metrics (system/cpu_utilization_percentage, memory, GPU where present: what a
# cell used beside how long it took), sampled every 10 s; a run shorter than that logs none. The monitor's
# start and stop lines are chatter.
logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)

_TERMINAL = ("FINISHED", "FAILED", "KILLED")


def active_experiment_name() -> str | None:
    """Name of the active run's experiment (e.g. the one ``mlflow run --experiment-name`` chose)."""
    r = mlflow.active_run()
    return _client().get_experiment(r.info.experiment_id).name if r else None


def active_run_id() -> str | None:
    r = mlflow.active_run()
    return r.info.run_id if r else None


def check_store() -> None:
    """Fail fast, with one line, when an HTTP tracking server is down (MLflow itself retries for minutes)."""
    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    why = health_problem(uri, timeout=5)
    if why is not None:
        raise FmnistError(
            f"tracking server {uri} is not reachable ({why}); start it (make server) or unset "
            f"MLFLOW_TRACKING_URI to use the local sqlite:///mlflow.db; nothing was computed"
        )
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return  # a bearer token (another kind of server): MLflow's own client sends it, our probe does not
    # /health needs no account: ask something that does, so missing or wrong credentials fail here, not mid-step.
    who = accounts.current()
    if http_status(uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1", who, timeout=10) == 401:
        if who is None:
            raise FmnistError(f"tracking server {uri} asks for an account: {accounts.SET_CREDENTIALS}; "
                              "nothing was computed")
        raise FmnistError(f"tracking server {uri} refused user '{who.username}' (wrong password, or no such "
                          f"user): check {accounts.USER_VAR} and {accounts.PASSWORD_VAR} (or ~/.mlflow/credentials); "
                          "nothing was computed")


def refusal(err: BaseException) -> str | None:
    """One line when ``err`` is the tracking server refusing this user (no account, or too little permission)."""
    exp = active_experiment_name_or_none() or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    return accounts.denied(err, exp)


def active_experiment_name_or_none() -> str | None:
    try:
        return active_experiment_name()
    except Exception:  # the server refusing us is why we are asking: no second error over the name
        return None


def reap_dead_runs() -> list[str]:
    """Mark KILLED the RUNNING runs whose process on this host is gone (SIGKILL, OOM, power loss)."""
    try:
        prepare_store()
        stale = mlflow.search_runs(
            search_all_experiments=True, output_format="list", max_results=200,
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{socket.gethostname()}'",
        )
    except Exception:  # reaping is housekeeping: never fail a command over it
        return []
    reaped = []
    for r in stale:
        pid = r.data.tags.get(PID_TAG, "")
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            _terminate(r.info.run_id, "KILLED", f"process {pid} died without ending the run; "
                                                "marked KILLED by a later command")
            reaped.append(r.info.run_id)
    return reaped


def one_line(err: BaseException) -> str:
    msg = str(err).strip().splitlines()
    return f"{type(err).__name__}: {msg[0] if msg else ''}"[:5000]


def launcher_run_id() -> str | None:
    """The run ``mlflow run`` opened for this command (``$MLFLOW_RUN_ID``), or None: the one place it is read.
    Only a run the graph's driver places on it takes it over (``run(..., launcher=...)``); an executor's worker
    (``$FMNIST_EXECUTOR``, e.g. a study's rerun cell on Ray) never does, whatever environment it inherited."""
    if os.environ.get("FMNIST_EXECUTOR"):
        return None
    return os.environ.get("MLFLOW_RUN_ID") or None


@contextmanager
def run(name: str, *, step: str, tags: dict[str, Any] | None = None, parent_run_id: str | None = None,
        launcher: str | None = None) -> Iterator[str]:
    """Open a run and yield its id, where the caller placed it.

    ``parent_run_id``: a child of that RUNNING run, even when no run is active here (a worker of a distributed
    executor); ``launcher``: take over that run (the one ``mlflow run`` made for the command); else a new run,
    nested under the active run if any. An exception ends it FAILED with the message in the ``fmnist.error``
    tag; Ctrl-C ends it KILLED. Never leaves it RUNNING.
    """
    outermost = mlflow.active_run() is None
    if outermost:
        check_store()
    prepare_store()
    if outermost:
        reap_dead_runs()
    run_id = _start(name, parent_run_id, launcher).info.run_id
    with _ending(run_id):
        mlflow.set_tags(_run_tags(step, tags))
        yield run_id
    _end(run_id, "FINISHED", None)


def _start(name: str, parent_run_id: str | None, launcher: str | None):
    active = mlflow.active_run()
    if parent_run_id:
        return _start_child(name, parent_run_id, nested=active is not None)
    if launcher:
        r = mlflow.start_run(run_id=launcher, nested=active is not None, log_system_metrics=True)
        mlflow.set_tags({"mlflow.runName": name, **_user_tag()})  # `mlflow run` recorded the OS user
        return r
    if active is None:
        _ensure_experiment()
    with _launcher_hidden():
        return mlflow.start_run(run_name=name, nested=active is not None, tags=_user_tag(), log_system_metrics=True)


def _user_tag() -> dict[str, str]:
    # MLflow records the OS user; on a server with accounts, the account that wrote the run is the one to show.
    who = accounts.current() if mlflow.get_tracking_uri().startswith(("http://", "https://")) else None
    return {"mlflow.user": who.username} if who else {}


def _start_child(name: str, parent_run_id: str, nested: bool):
    # MLflow itself only refuses a deleted parent. An ended one means its driver is done or gone: a late
    # worker must not add results to it after the fact.
    parent = _client().get_run(parent_run_id)
    if parent.info.status != "RUNNING":
        raise FmnistError(f"parent run {parent_run_id} is {parent.info.status}, not RUNNING; "
                          f"no child run was opened")
    with _launcher_hidden():
        return mlflow.start_run(run_name=name, parent_run_id=parent_run_id, nested=nested,
                                experiment_id=parent.info.experiment_id, tags=_user_tag(),
                                log_system_metrics=True)


@contextmanager
def _launcher_hidden() -> Iterator[None]:
    """MLflow's ``start_run`` without a run id resumes ``$MLFLOW_RUN_ID`` by itself: a new run or a child must
    not, so the variable is hidden for the call (a run placed on the launcher names it explicitly)."""
    saved = os.environ.pop("MLFLOW_RUN_ID", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MLFLOW_RUN_ID"] = saved


def _run_tags(step: str, tags: dict[str, Any] | None) -> dict[str, str]:
    out = {STEP_TAG: step, VERSION_TAG: __version__, PID_TAG: str(os.getpid()),
           HOST_TAG: socket.gethostname()}
    commit = _git_commit()
    if commit:
        out[GIT_COMMIT_TAG] = commit
    for var, tag in (("FMNIST_NODE_ID", NODE_ID_TAG), ("FMNIST_EXECUTOR", EXECUTOR_TAG)):
        if os.environ.get(var):  # set by an executor's worker: where the run was computed
            out[tag] = os.environ[var]
    out.update({k: str(v) for k, v in (tags or {}).items()})
    return out


def _ensure_experiment() -> None:
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return  # mlflow reads it itself
    # Not left to mlflow's own MLFLOW_EXPERIMENT_NAME lookup: it fails when another process creates the
    # experiment at the same moment (RESOURCE_ALREADY_EXISTS); see create_experiment_once.
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    create_experiment_once(name)
    mlflow.set_experiment(name)


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


@contextmanager
def _ending(run_id: str) -> Iterator[None]:
    """End the run FAILED (message in ``fmnist.error``) or KILLED (Ctrl-C) if the block raises."""
    try:
        yield
    except KeyboardInterrupt:
        _end(run_id, "KILLED", "interrupted (KeyboardInterrupt)")
        raise
    except BaseException as e:  # SystemExit too: a run must never stay RUNNING
        _end(run_id, "FAILED", one_line(e))
        raise


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


def _terminate(run_id: str, status: str, message: str) -> None:
    c = _client()
    c.set_tag(run_id, ERROR_TAG, message[:5000])
    c.set_terminated(run_id, status)


def fail_run(run_id: str, message: str) -> None:
    """Mark a run (e.g. one ``mlflow run`` created before our code could parse its params) FAILED."""
    _terminate(run_id, "FAILED", message)


def end_if_running(run_id: str, status: str, message: str) -> bool:
    """End a run still RUNNING (the one ``mlflow run`` made, when our code failed before or around it)."""
    if _client().get_run(run_id).info.status != "RUNNING":
        return False  # already ended by run(): keep its status and message
    _terminate(run_id, status, message)
    return True


def end_unfinished_children(parent_run_id: str, status: str = "KILLED",
                            message: str = "its parent run ended before it did") -> list[str]:
    """End every child of ``parent_run_id`` still RUNNING or SCHEDULED as ``status``, ``message`` in its
    ``fmnist.error`` tag (e.g. a driver's workers lost with their node). Returns their ids."""
    if status not in _TERMINAL:
        raise ParamError(f"status={status!r}: a run ends as one of {', '.join(_TERMINAL)}")
    ids = [c["run_id"] for c in child_runs(parent_run_id) if c["status"] in ("RUNNING", "SCHEDULED")]
    for run_id in ids:
        _end(run_id, status, message[:5000])
    return ids


@contextmanager
def reopen_run(run_id: str) -> Iterator[str]:
    """Continue an existing (unfinished) run by id: status back to RUNNING, ended like ``run()``.

    Nests under the active run if there is one; ``MLFLOW_RUN_ID`` is ignored (``run_id`` wins).
    """
    if mlflow.active_run() is None:
        check_store()
    prepare_store()
    mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)
    with _ending(run_id):
        # This process owns the run now: reap_dead_runs must look at our pid, not the dead one's.
        mlflow.set_tags({PID_TAG: os.getpid(), HOST_TAG: socket.gethostname()})
        yield run_id
    if ERROR_TAG in _client().get_run(run_id).data.tags:  # the interruption's error is history now
        _client().delete_tag(run_id, ERROR_TAG)
    _end(run_id, "FINISHED", None)
